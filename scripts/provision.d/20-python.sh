#!/usr/bin/env bash
# Python wheels into one venv: command-line tools shipped as wheels (kubectl, temporal,
# seaweedfs), the CUDA toolchain headers and nvcc, and the reference libraries tests use.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
req="$HERD_ROOT/scripts/requirements.txt"
step "python wheels"
key=$(hash_of "$req")
if [ -x "$HERD_VENV/bin/python" ] && stamp_ok python "$key"; then done_in "present"; exit 0; fi
[ -x "$HERD_VENV/bin/python" ] || python3 -m venv "$HERD_VENV" || fail "cannot create venv"
"$HERD_VENV/bin/pip" install -q --disable-pip-version-check -r "$req" || fail "pip install -r $req"
stamp_set python "$key"
done_in "installed"
