#!/usr/bin/env bash
# Debian packages: BLAS, SentencePiece, Gloo and GoogleTest for the engine; etcd for the
# local control plane (and openssl for its certificates); Chromium for the report test.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
pkgs=(build-essential cmake ninja-build pkg-config libopenblas-dev libsentencepiece-dev
  sentencepiece libgloo-dev libgtest-dev etcd-server openssl chromium)
step "debian packages"
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then done_in "present"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -q >/dev/null || fail "apt-get update failed"
as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || fail "apt-get install ${missing[*]} failed"
done_in "installed ${missing[*]}"
