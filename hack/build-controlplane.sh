#!/usr/bin/env bash
# Build a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kubectl) and the node components (kube-scheduler, kubelet, kube-proxy) from the Go
# module proxy, cached under a directory keyed by version, so a
# second run builds nothing.
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules at v0.0.0 and
# `replace`s them with ./staging/..., which `go install pkg@version` refuses. A tiny
# module that requires k8s.io/kubernetes and replaces each staging module with its
# published v0.<minor>.<patch> release builds the same commands.
#
# Usage: hack/build-controlplane.sh          -> prints the bin directory on stdout
#        hack/build-controlplane.sh --check  -> the same if everything is built, else
#          names what is missing and `make controlplane`, exit 1; never builds. The
#          tests locate binaries this way (a build inside a test's timeout would fail
#          it on a fresh machine), so this script stays the one place that knows where
#          they are. LAMBDAKUBE_NO_BUILD=1 means --check too (tests/conftest.py sets it).
set -euo pipefail

# shellcheck source=hack/check-mode.sh
source "$(dirname "${BASH_SOURCE[0]}")/check-mode.sh"
if [ "${#CHECK_ARGS[@]}" -gt 0 ]; then echo "usage: $0 [--check]" >&2; exit 2; fi

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${LAMBDAKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lambdakube}"
# One go build for all of them: they share most packages, so the node binaries cost
# little on top of the control plane. cgo stays off (kubelet only wants it for net and
# os/user, whose pure-Go fallbacks work), which also shares the build cache.
K8S_BINS="kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy"
BIN_DIR="$CACHE_ROOT/controlplane/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}/bin"

ALL_BINS="etcd $K8S_BINS"

log() { echo "[build-controlplane] $*" >&2; }

have_all() {
  for b in $ALL_BINS; do
    [ -x "$BIN_DIR/$b" ] || return 1
  done
}

if have_all; then
  echo "$BIN_DIR"
  exit 0
fi
if [ "$CHECK_ONLY" = 1 ]; then
  missing=()
  for b in $ALL_BINS; do [ -x "$BIN_DIR/$b" ] || missing+=("$b"); done
  log "not built: ${missing[*]} (k8s $K8S_VERSION, etcd $ETCD_VERSION, in $BIN_DIR):" \
    "run \`make controlplane\` first (10-25 min cold on 2 cores, then cached)"
  exit 1
fi

command -v go >/dev/null || { log "go is required (https://go.dev) to build the control plane"; exit 1; }
mkdir -p "$BIN_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

# Staging modules of k8s.io/kubernetes, each published as k8s.io/<name> v0.<minor>.<patch>.
STAGING="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
cloud-provider cluster-bootstrap code-generator component-base component-helpers
controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
sample-apiserver sample-cli-plugin sample-controller"

build_kubernetes() {
  local start=$SECONDS minor_patch="${K8S_VERSION#v1.}"
  local staging_version="v0.${minor_patch}" minor="${minor_patch%%.*}"
  mkdir -p "$WORK/k8s" && cd "$WORK/k8s"
  go mod init lambdakube.dev/controlplane >/dev/null 2>&1
  for m in $STAGING; do
    go mod edit -replace "k8s.io/$m=k8s.io/$m@$staging_version"
  done
  log "resolving k8s.io/kubernetes@$K8S_VERSION"
  go get "k8s.io/kubernetes@$K8S_VERSION" >&2
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  log "building $K8S_BINS $K8S_VERSION (10-25 min cold on 2 cores)"
  local pkgs=()
  for b in $K8S_BINS; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  go build -trimpath -ldflags "$ld" -o "$WORK/out/" "${pkgs[@]}" >&2
  log "kubernetes built in $((SECONDS - start)) s"
}

build_etcd() {
  local start=$SECONDS
  mkdir -p "$WORK/etcd" && cd "$WORK/etcd"
  go mod init lambdakube.dev/etcd >/dev/null 2>&1
  log "building etcd $ETCD_VERSION"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$WORK/out/etcd" go.etcd.io/etcd/server/v3 >&2
  log "etcd built in $((SECONDS - start)) s"
}

[ -x "$BIN_DIR/etcd" ] || build_etcd
k8s_built() { for b in $K8S_BINS; do [ -x "$BIN_DIR/$b" ] || return 1; done; }
k8s_built || build_kubernetes
# Move into place only once everything built, so a half-built cache never looks complete.
for b in "$WORK"/out/*; do mv -f "$b" "$BIN_DIR/"; done
have_all || { log "build incomplete"; exit 1; }
echo "$BIN_DIR"
