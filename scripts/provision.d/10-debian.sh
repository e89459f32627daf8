#!/usr/bin/env bash
# for: demo
# Debian packages the engine and the local control plane need: a C++ toolchain, BLAS,
# SentencePiece and Gloo for the engine; openssl for the plane's certificates (its etcd is
# built in 12-kubernetes.sh).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
step "debian packages"
apt_install build-essential cmake ninja-build pkg-config libopenblas-dev libsentencepiece-dev \
  libgloo-dev openssl
