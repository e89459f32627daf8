#!/usr/bin/env bash
# The native engine as a Node addon (native/build/herd_native.node), plus the CUDA backend
# library when nvcc from the nvidia wheels is present. CMake and Ninja make a re-run a no-op.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$HERD_ROOT/scripts/env.sh"
step "native engine"
cd "$HERD_ROOT"
build="native/build"
args=(-G Ninja -DCMAKE_BUILD_TYPE=Release
  -DNODE_API_HEADERS="$(node -p "require('node-api-headers').include_dir")"
  -DNODE_ADDON_API="$(node -p "require('node-addon-api').include_dir")")
if [ -n "${HERD_CUDA_HOME:-}" ] && [ -x "$HERD_CUDA_HOME/bin/nvcc" ] && [ "${HERD_NO_CUDA:-}" != 1 ]; then
  args+=(-DCMAKE_CUDA_COMPILER="$HERD_CUDA_HOME/bin/nvcc" -DHERD_CUDA_HOME="$HERD_CUDA_HOME")
fi
if [ ! -f "$build/build.ninja" ]; then
  cmake -S native -B "$build" "${args[@]}" >"$HERD_CACHE/native-configure.log" 2>&1 \
    || fail "cmake configure failed, see $HERD_CACHE/native-configure.log"
fi
cmake --build "$build" >"$HERD_CACHE/native-build.log" 2>&1 \
  || { tail -30 "$HERD_CACHE/native-build.log" >&2; fail "native build failed, see $HERD_CACHE/native-build.log"; }
done_in "built"
