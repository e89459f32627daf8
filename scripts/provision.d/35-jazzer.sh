#!/usr/bin/env bash
# for: test
# Jazzer.js (libFuzzer for Node, the fuzz harnesses in test/fuzz/) ships its libFuzzer addon
# prebuilt against glibc 2.38 and GCC 13's libstdc++; on an older system (Debian 12: glibc
# 2.36) the loader refuses it for three symbol versions. test/fuzz/addon-compat.ts retargets
# those, in place, and fails naming anything else missing. Runs after `npm ci` (30-npm.sh),
# keyed by the installed addon's hash, so a reinstall is patched again.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
step "jazzer.js addon"
addon="$HERD_ROOT/node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node"
[ "$(uname -m)" = x86_64 ] && [ -f "$addon" ] || { done_in "not needed"; exit 0; }
key=$(hash_of "$addon")
if stamp_ok jazzer-addon "$key"; then done_in "present"; exit 0; fi
cd "$HERD_ROOT"
node --import tsx test/fuzz/addon-compat.ts "$addon" >"$HERD_CACHE/jazzer-addon.log" 2>&1 ||
  fail "see $HERD_CACHE/jazzer-addon.log"
node -e 'require(process.argv[1])' "$addon" 2>>"$HERD_CACHE/jazzer-addon.log" ||
  fail "the patched addon does not load, see $HERD_CACHE/jazzer-addon.log"
stamp_set jazzer-addon "$(hash_of "$addon")"
if grep -q "nothing to patch" "$HERD_CACHE/jazzer-addon.log"; then done_in "ok"
else done_in "patched ($(wc -l <"$HERD_CACHE/jazzer-addon.log") symbols)"; fi
