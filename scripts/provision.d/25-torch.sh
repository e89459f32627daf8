#!/usr/bin/env bash
# PyTorch in its own venv for the engine's parity tests and CPU benchmark (see
# scripts/requirements-torch.txt for why it is apart from the main venv).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements-torch.txt"
venv="$HERD_CACHE/torch-venv"
step "pytorch (reference)"
key=$(hash_of "$req")
if [ -x "$venv/bin/python" ] && stamp_ok torch "$key"; then done_in "present"; exit 0; fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || fail "cannot create $venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" || fail "pip install -r $req"
"$venv/bin/python" -c "import torch; torch.ones(2, requires_grad=True).sum().backward()" \
  || fail "torch does not import or run autograd on the CPU"
stamp_set torch "$key"
done_in "installed"
