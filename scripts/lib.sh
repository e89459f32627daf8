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

# apt_install PKG...: installs those of the Debian packages that are missing, and says which
# (or "present") on the step's line.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then done_in "present"; return 0; fi
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q >"$HERD_CACHE/apt.log" 2>&1 || fail "apt-get update failed, see $HERD_CACHE/apt.log"
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$HERD_CACHE/apt.log" 2>&1 \
    || fail "apt-get install ${missing[*]} failed, see $HERD_CACHE/apt.log"
  done_in "installed ${missing[*]}"
}

# pip_install NAME REQUIREMENTS: installs a pinned requirements file into the herd venv,
# once per version of the file.
pip_install() {
  local name="$1" req="$2" key
  key=$(hash_of "$req")
  if [ -x "$HERD_VENV/bin/python" ] && stamp_ok "$name" "$key"; then done_in "present"; return 0; fi
  [ -x "$HERD_VENV/bin/python" ] || python3 -m venv "$HERD_VENV" || fail "cannot create venv"
  "$HERD_VENV/bin/pip" install -q --disable-pip-version-check -r "$req" >"$HERD_CACHE/$name-pip.log" 2>&1 \
    || fail "pip install -r $req failed, see $HERD_CACHE/$name-pip.log"
  stamp_set "$name" "$key"
  done_in "installed"
}
