#!/usr/bin/env bash
# for: test
# PyTorch in its own venv for the engine's parity tests and CPU benchmark. The list in
# scripts/requirements-torch.txt is complete and pinned and installed with --no-deps (it
# leaves out the parts of torch's CUDA dependencies that CPU use never loads); a changed list
# rebuilds the venv from scratch, so what is there is exactly what the list says.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements-torch.txt"
venv="$HERD_CACHE/torch-venv"
step "pytorch (reference)"
key=$(hash_of "$req")
if [ -x "$venv/bin/python" ] && stamp_ok torch "$key"; then done_in "present"; exit 0; fi
rm -rf "$venv"
python3 -m venv "$venv" || fail "cannot create $venv"
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req" \
  || fail "pip install --no-deps -r $req"
"$venv/bin/python" -c "import torch; torch.ones(2, requires_grad=True).sum().backward()" \
  || fail "torch does not import or run autograd on the CPU"
stamp_set torch "$key"
done_in "installed"
