#!/usr/bin/env bash
# Installs what herd needs on a fresh Debian machine, idempotently. Each step lives in
# scripts/provision.d/, runs in name order, prints one line with its time, and skips its work
# when its stamp (a hash of its inputs) says nothing changed. Caches live under ~/.cache/herd.
#
#   provision.sh demo   only the steps whose header says `# for: demo`: what `npm run demo`
#                       uses (the engine for the CPU, the local control plane, npm packages)
#   provision.sh        every step: also what the tests and benchmarks use (CUDA toolchain,
#                       PyTorch, helm, llama.cpp's model, jazzer, Docker and its base image)
#
# A step whose header says `# background: yes` (the Kubernetes build, the longest by far: it
# downloads ~900 MB of Go modules, then compiles) starts as soon as the steps before it are
# done and runs beside the later ones, so their downloads and its own overlap; its line is
# printed when it ends, and a failure of it fails the whole run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${1:-all}"
case "$profile" in
  demo | all) ;;
  *) echo "usage: provision.sh [demo|all]" >&2; exit 64 ;;
esac
export HERD_PROVISION="$profile"
t0=$(date +%s%N)
background=()
out="$(mktemp -d)"
# On failure, background steps stop too (each runs in its own process group).
cleanup() {
  local status=$? b
  if [ "$status" != 0 ]; then for b in "${background[@]}"; do kill -- "-${b%%:*}" 2>/dev/null || true; done; fi
  rm -rf "$out"
}
trap cleanup EXIT
# finish PID:NAME: waits for a background step, prints its line, and stops the run if it failed.
finish() {
  local status=0
  wait "${1%%:*}" || status=$?
  cat "$out/${1#*:}.log"
  if [ "$status" != 0 ]; then echo "[provision] ${1#*:} failed (exit $status)" >&2; exit 1; fi
}
for s in "$root"/scripts/provision.d/*.sh; do
  if [ "$profile" = demo ] && ! grep -qx '# for: demo' "$s"; then continue; fi
  if grep -qx '# waits: background' "$s"; then
    for b in "${background[@]}"; do finish "$b"; done
    background=()
  fi
  if grep -qx '# background: yes' "$s"; then
    setsid bash "$s" >"$out/$(basename "$s").log" 2>&1 &
    background+=("$!:$(basename "$s")")
  else
    bash "$s" || { echo "[provision] $(basename "$s") failed (exit $?)" >&2; exit 1; }
  fi
done
for b in "${background[@]}"; do finish "$b"; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
printf '[provision] %-28s %d.%03ds\n' "total ($profile)" $((ms / 1000)) $((ms % 1000))
