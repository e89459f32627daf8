#!/usr/bin/env bash
# `npm test`: provision what is missing, then type-check, lint, format-check, and run every
# *.test.ts with node's test runner (its closing summary is what CI reads).
# `npm test -- test/native` runs the tests under the given paths only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/provision.sh
source scripts/env.sh
echo "[test] type-check";   npx tsc --noEmit
echo "[test] lint";         npx eslint --max-warnings 0 .
echo "[test] format check"; npx prettier --check --log-level warn .
if [ $# -eq 0 ]; then set -- .; fi
mapfile -t files < <(find "$@" -path ./node_modules -prune -o -name '*.test.ts' -print | sort)
[ ${#files[@]} -gt 0 ] || { echo "[test] no test files under $*" >&2; exit 1; }
echo "[test] ${#files[@]} test files"
# Tests under test/cluster/ share one local control plane (test/cluster/harness.ts). If the run
# started it, it is stopped afterwards, quietly, so node's summary stays the last lines printed.
state="${HERD_STATE:-$HERD_CACHE/dev}"
rc=0
node --import tsx --test --test-reporter=spec "${files[@]}" || rc=$?
if [ -f "$state/run/started-by-tests" ]; then
  node bin/herd.mjs dev down --state "$state" >"$HERD_CACHE/test-dev-down.log" 2>&1 || true
fi
exit $rc
