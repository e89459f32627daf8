#!/usr/bin/env bash
# for: test
# Wheels the tests add to the same venv: the CUDA toolchain (nvcc, headers, cuBLAS, NCCL) that
# the CUDA backend and its CPU emulation are compiled with, and the reference libraries the
# tests compare against (numpy, sentencepiece). Before 50-native.sh, which builds the CUDA
# backend when nvcc is there.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
step "python wheels (tests)"
pip_install python-test "$HERD_ROOT/scripts/requirements-test.txt"
