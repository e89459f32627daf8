#!/usr/bin/env bash
# for: demo
# The native engine as a Node addon (native/build/herd_native.node), plus the CUDA backend
# library when nvcc from the nvidia wheels is present (22-python-test.sh installs it, so the
# demo's provisioning builds for the CPU only). The demo builds the addon alone; every other
# target (the CUDA backend, its stand-in, gradcheck) is for the tests. CMake and Ninja make a
# re-run a no-op; a change of configuration (nvcc arriving) configures the build folder anew.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$HERD_ROOT/scripts/env.sh"
step "native engine"
cd "$HERD_ROOT"
build="native/build"
args=(-G Ninja -DCMAKE_BUILD_TYPE=Release
  -DNODE_API_HEADERS="$(node -p "require('node-api-headers').include_dir")"
  -DNODE_ADDON_API="$(node -p "require('node-addon-api').include_dir")")
cuda=""
if [ -n "${HERD_CUDA_HOME:-}" ] && [ -x "$HERD_CUDA_HOME/bin/nvcc" ] && [ "${HERD_NO_CUDA:-}" != 1 ]; then
  args+=(-DCMAKE_CUDA_COMPILER="$HERD_CUDA_HOME/bin/nvcc" -DHERD_CUDA_HOME="$HERD_CUDA_HOME")
  cuda=" + CUDA backend"
fi
configured="$(printf '%s\n' "${args[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.herd-configured" 2>/dev/null)" != "$configured" ]; then
  # CMake cannot add a language to a configured folder, so a new configuration starts afresh
  rm -rf "$build"
  cmake -S native -B "$build" "${args[@]}" >"$HERD_CACHE/native-configure.log" 2>&1 \
    || fail "cmake configure failed, see $HERD_CACHE/native-configure.log"
  echo "$configured" >"$build/.herd-configured"
fi
targets=()
if [ "${HERD_PROVISION:-all}" = demo ]; then targets=(--target herd_native); fi
cmake --build "$build" "${targets[@]}" >"$HERD_CACHE/native-build.log" 2>&1 \
  || { tail -30 "$HERD_CACHE/native-build.log" >&2; fail "native build failed, see $HERD_CACHE/native-build.log"; }
if [ ${#targets[@]} -gt 0 ]; then done_in "built (addon only, for the CPU)"; else done_in "built${cuda}"; fi
