#!/usr/bin/env bash
# for: test
# waits: background
# helm, for the chart's tests (`helm lint`, `helm template`) and for installing herd on a real
# cluster. Built from its Go module (helm.sh/helm/v3) with `go install`, since nothing but the
# package registries can be reached; cached per version in $HERD_CACHE/helm/<version>/bin and
# linked into $HERD_CACHE/bin (on PATH via env.sh). The Go module and build caches are the
# default ones the Kubernetes step fills too, which shares most of helm's dependencies
# (k8s.io/client-go, apimachinery): after it, helm took 2.5 CPU-minutes to build.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
HELM_VERSION="v3.22.0"
dir="$HERD_CACHE/helm/$HELM_VERSION"
step "helm $HELM_VERSION"

# The stamp is this script's hash: a change of version or flags builds again.
stamp="helm-$(hash_of "$0")"
if [ -x "$dir/bin/helm" ] && stamp_ok helm "$stamp" &&
  [ "$(readlink "$HERD_CACHE/bin/helm")" = "$dir/bin/helm" ]; then
  done_in "present"
  exit 0
fi
link() {
  mkdir -p "$HERD_CACHE/bin"
  ln -sfn "$dir/bin/helm" "$HERD_CACHE/bin/helm"
}
if [ -x "$dir/bin/helm" ] && stamp_ok helm "$stamp"; then link; done_in "linked"; exit 0; fi
command -v go >/dev/null || fail "go is not installed (helm is built from its Go module)"

mkdir -p "$dir/bin"
log="$dir/build.log"
# What helm's own Makefile stamps in: its version (else `helm version` says
# v3.x-unreleased) and the Kubernetes version of the client-go it is built with, which
# `helm template` and `helm lint` assume for .Capabilities.KubeVersion (else v1.20, and a
# chart's kubeVersion >=1.30 is refused). -mod=mod does not apply to `go install pkg@version`.
helm_mod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$helm_mod" ] || fail "could not download helm.sh/helm/v3@$HELM_VERSION"
client_go="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$helm_mod")" # v0.37.0 -> Kubernetes 1.37
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
[ -n "$k8s_minor" ] || fail "no k8s.io/client-go in $helm_mod"
pkg="helm.sh/helm/v3/internal/version"
ldflags="-s -w -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
# GOGC=400: faster compiles (12-kubernetes.sh says by how much)
if ! GOBIN="$dir/bin" GOFLAGS="-trimpath -buildvcs=false" GOGC=400 nice -n 10 \
  go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$log" 2>&1; then
  tail -30 "$log" >&2
  fail "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed, see $log"
fi
"$dir/bin/helm" version --short >>"$log" 2>&1 || fail "the built helm does not run, see $log"
stamp_set helm "$stamp"
link
done_in "built"
