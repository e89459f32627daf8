#!/usr/bin/env bash
# for: test
# A Docker engine for herd's images and the container tests (docs/containers.md):
#  1. Debian's docker.io and debootstrap.
#  2. A dockerd of the project's own when no engine answers: overlay2 storage where this
#     machine can mount an overlay, else vfs (works on any filesystem, but every layer and
#     every container is a full copy: builds and container starts are many times slower);
#     HERD_DOCKER_STORAGE=vfs|overlay2 chooses. No iptables and no bridge, since herd's
#     containers use host networking only. Its data lives in $HERD_CACHE/docker, its socket is
#     $HERD_CACHE/docker/docker.sock (scripts/env.sh exports DOCKER_HOST), and its pid file is
#     in the dev state folder, so `herd dev down` stops it.
#  3. The local base image herd/base:bookworm: Debian bookworm (debootstrap minbase) with this
#     machine's Node 20 and npm copied in where the official node image keeps them, imported
#     with `docker import`. No image can be pulled here, so the tests build FROM it; users'
#     builds use the pinned public bases in images/Dockerfile. Rebuilt only when its recipe
#     (this file, node and npm versions) changes.
# HERD_NO_DOCKER=1 skips the whole step; the container tests then say loudly that they did not run.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$HERD_ROOT/scripts/env.sh"

step "docker packages"
if [ "${HERD_NO_DOCKER:-}" = 1 ]; then done_in "skipped (HERD_NO_DOCKER=1)"; exit 0; fi
apt_install docker.io debootstrap

step "docker engine"
state="${HERD_STATE:-$HERD_CACHE/dev}"
engine="$HERD_CACHE/docker"
if docker info >/dev/null 2>&1; then
  done_in "running (${DOCKER_HOST:-/var/run/docker.sock})"
else
  [ "${DOCKER_HOST:-}" = "unix://$engine/docker.sock" ] \
    || fail "the engine at ${DOCKER_HOST:-/var/run/docker.sock} does not answer; start it, or unset DOCKER_HOST and remove that socket to let provisioning start herd's own"
  mkdir -p "$engine/data" "$state/run" "$state/logs"
  rm -f "$engine/docker.sock"
  storage="${HERD_DOCKER_STORAGE:-}"
  if [ -z "$storage" ]; then
    probe="$(mktemp -d)"
    mkdir "$probe"/{lower,upper,work,merged}
    if as_root mount -t overlay overlay \
      -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
      as_root umount "$probe/merged"; storage=overlay2
    else
      storage=vfs
    fi
    rm -rf "$probe"
  fi
  # setsid: its own process group, which `herd dev down` signals as a whole.
  as_root setsid dockerd \
    --host="unix://$engine/docker.sock" \
    --data-root="$engine/data" \
    --exec-root=/run/herd-docker \
    --pidfile="$state/run/dockerd.pid" \
    --storage-driver="$storage" \
    --iptables=false --ip-masq=false --bridge=none \
    >>"$state/logs/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 \
    || fail "dockerd did not answer in 60 s; last lines of $state/logs/dockerd.log:
$(tail -15 "$state/logs/dockerd.log")"
  done_in "started ($storage, $DOCKER_HOST, pid $(cat "$state/run/dockerd.pid"))"
fi

step "docker base image"
node_bin="$(command -v node)"
npm_dir="$(npm root -g)/npm"
[ "$(node -p 'process.versions.node.split(".")[0]')" = 20 ] \
  || fail "the base image copies this machine's Node, which must be 20 (found $(node -v))"
[ -d "$npm_dir" ] || fail "npm not found at $npm_dir"
key="$(hash_of "$0")-$(node -v)-$(npm -v)"
tag="herd/base:bookworm-$(echo "$key" | sha256sum | cut -c1-12)"
if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" herd/base:bookworm
  done_in "present ($tag)"; exit 0
fi
rootfs="$engine/base-rootfs"
as_root rm -rf "$rootfs"
as_root debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" \
  http://deb.debian.org/debian >"$engine/debootstrap.log" 2>&1 \
  || fail "debootstrap failed, see $engine/debootstrap.log"
# The official node image's layout, so images/Dockerfile copies Node the same way from either.
as_root install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
as_root mkdir -p "$rootfs/usr/local/lib/node_modules"
as_root cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
as_root ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
as_root ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
# The machine's own certificate authorities (an egress proxy's, say), so npm and apt inside
# builds FROM this image reach what the machine reaches.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  as_root cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  as_root chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates failed"
fi
# What debootstrap downloaded is not part of the image.
as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
as_root tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["bash"]' - "$tag" >/dev/null || fail "docker import failed"
as_root rm -rf "$rootfs"
docker tag "$tag" herd/base:bookworm
# Older recipes' base images go (their data is a full copy each under vfs).
for old in $(docker image ls herd/base --format '{{.Repository}}:{{.Tag}}' | grep ':bookworm-' | grep -vx "$tag"); do
  docker rmi "$old" >/dev/null 2>&1 || true
done
done_in "built ($tag)"
