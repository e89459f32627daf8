# Shared by every provisioning step: where the cache lives and how a step reports.
# Sourced, never run. Steps stay idempotent: each checks what is there before it acts.

HERD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERD_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/herd"
HERD_VENV="$HERD_CACHE/venv"
HERD_STAMPS="$HERD_CACHE/stamps"
mkdir -p "$HERD_CACHE" "$HERD_STAMPS"

# step NAME: prints a progress line; `done_in` closes it with the elapsed time.
step() { HERD_STEP="$1"; HERD_STEP_T0=$(date +%s%N); printf '[provision] %-28s ' "$1"; }
done_in() {
  local ms=$(( ($(date +%s%N) - HERD_STEP_T0) / 1000000 ))
  printf '%s (%d.%03ds)\n' "${1:-ok}" $((ms / 1000)) $((ms % 1000))
}
fail() { printf 'FAILED\n[provision] %s: %s\n' "$HERD_STEP" "$*" >&2; exit 1; }

# A stamp records that a step finished for a given input hash, so a re-run is a no-op.
stamp_ok() { [ -f "$HERD_STAMPS/$1" ] && [ "$(cat "$HERD_STAMPS/$1")" = "$2" ]; }
stamp_set() { echo "$2" >"$HERD_STAMPS/$1"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# Root or passwordless sudo is needed only for Debian packages.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
