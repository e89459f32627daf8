#!/usr/bin/env bash
# for: test
# Temporal's time-skipping test server, for the workflow tests that simulate days of a job
# (test/workflows/long-run.test.ts, bench/long-run.ts). The TypeScript SDK downloads a native
# build of it from Temporal's CDN, which is not reachable here; the same server is published
# on Maven Central as the Java SDK's temporal-test-server, so it runs on the JDK. Writes
# $HERD_CACHE/bin/temporal-test-server PORT, the command line the SDK expects.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
step "temporal test server"
pom="$HERD_ROOT/scripts/temporal-test-server/pom.xml"
dir="$HERD_CACHE/temporal-test-server"
key=$(hash_of "$pom")
if [ -x "$HERD_CACHE/bin/temporal-test-server" ] && stamp_ok temporal-test-server "$key"; then
  done_in "present"; exit 0
fi
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  apt_install default-jre-headless maven >/dev/null
fi
rm -rf "$dir" && mkdir -p "$dir" "$HERD_CACHE/bin"
mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dir/lib" \
  >"$HERD_CACHE/temporal-test-server.log" 2>&1 ||
  fail "mvn could not fetch the jars, see $HERD_CACHE/temporal-test-server.log"
cat >"$HERD_CACHE/bin/temporal-test-server" <<WRAPPER
#!/bin/sh
# Temporal's test server on port \$1 (written by scripts/provision.d/24-temporal-test-server.sh).
exec java -Xmx512m -cp '$dir/lib/*' io.temporal.testserver.TestServer "\$@"
WRAPPER
chmod +x "$HERD_CACHE/bin/temporal-test-server"
stamp_set temporal-test-server "$key"
done_in "installed ($(ls "$dir/lib" | wc -l) jars)"
