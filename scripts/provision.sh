#!/usr/bin/env bash
# Installs everything herd needs on a fresh Debian machine, idempotently. Each step lives in
# scripts/provision.d/, runs in name order, prints one progress line, and skips its work when
# its stamp (a hash of its inputs) says nothing changed. Caches live under ~/.cache/herd.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
t0=$(date +%s)
for s in "$root"/scripts/provision.d/*.sh; do
  bash "$s"
done
echo "[provision] all steps ok in $(( $(date +%s) - t0 ))s"
