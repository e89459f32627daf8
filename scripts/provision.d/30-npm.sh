#!/usr/bin/env bash
# for: demo
# npm packages from package-lock.json. Install scripts stay off except those approved in
# package.json's allowScripts.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
step "npm packages"
cd "$HERD_ROOT"
key=$(hash_of package-lock.json)
if [ -d node_modules ] && [ "$(cat node_modules/.herd-stamp 2>/dev/null)" = "$key" ]; then
  done_in "present"; exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null || fail "npm ci failed"
echo "$key" >node_modules/.herd-stamp
done_in "installed"
