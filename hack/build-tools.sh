#!/usr/bin/env bash
# Build the chart and e2e tools -- helm, kind and CoreDNS -- from the Go module proxy,
# each cached under a directory keyed by its version, so a second run builds nothing:
#
#   ~/.cache/lambdakube/tools/helm-<version>/bin/helm
#   ~/.cache/lambdakube/tools/kind-<version>/bin/kind
#   ~/.cache/lambdakube/tools/coredns-<version>/bin/coredns   (the real node's cluster DNS)
#   ~/.cache/lambdakube/tools/rie-<version>/bin/rie           (bench only: Lambda's own
#       emulator, aws-lambda-runtime-interface-emulator, with awslambdaric from PyPI in
#       rie-<version>/python, for the $PYTHON that runs the benches)
#   ~/.cache/lambdakube/tools/bin/{helm,kind,coredns}      (symlinks: one dir for PATH)
#
# None of the modules has `replace` directives, so plain `go install pkg@version` works
# (no wrapper module as in hack/build-controlplane.sh). helm gets the same version ldflags
# as its own Makefile, so `helm version` and the default .Capabilities.KubeVersion are
# right instead of "v3.x" / the Go module's compiled-in guess.
#
# Usage: hack/build-tools.sh [helm|kind ...]   -> prints the bin directory on stdout
#   HELM_VERSION, KIND_VERSION override the pinned versions; LAMBDAKUBE_CACHE the root.
#        hack/build-tools.sh --check [tool ...]
#     -> the same if those tools are built, else names the missing ones and the make
#        target that builds them, exit 1; never builds. The tests locate their tools this
#        way (a build inside a test's timeout would fail it on a fresh machine), so this
#        script stays the one place that knows where they are. LAMBDAKUBE_NO_BUILD=1
#        means --check too (tests/conftest.py sets it for everything the tests run).
set -euo pipefail

# shellcheck source=hack/check-mode.sh
source "$(dirname "${BASH_SOURCE[0]}")/check-mode.sh"
set -- "${CHECK_ARGS[@]+"${CHECK_ARGS[@]}"}"

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
RIE_MODULE_VERSION="${RIE_MODULE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}"
AWSLAMBDARIC_VERSION="${AWSLAMBDARIC_VERSION:-4.2.2}"
CACHE_ROOT="${LAMBDAKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lambdakube}"
TOOLS="$CACHE_ROOT/tools"
LINK_DIR="$TOOLS/bin"

log() { echo "[build-tools] $*" >&2; }

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(helm kind coredns)

version_of() {
  case "$1" in
    helm) echo "$HELM_VERSION" ;;
    kind) echo "$KIND_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    rie) echo "${RIE_MODULE_VERSION##*-}-ric$AWSLAMBDARIC_VERSION" ;;
    *) log "unknown tool: $1 (helm, kind, coredns, rie)"; exit 2 ;;
  esac
}

bin_dir_of() { echo "$TOOLS/$1-$(version_of "$1")/bin"; }

build_helm() {
  local out="$1" start=$SECONDS work
  work="$(mktemp -d)"
  # Resolve helm's own client-go version, as helm's Makefile does, for the default
  # Kubernetes version `helm template`/`helm lint` assume (client-go v0.N -> 1.N).
  local mod_dir client_go major minor
  mod_dir="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  client_go="$(sed -n 's/^\s*k8s.io\/client-go v\([0-9.]*\).*/\1/p' "$mod_dir/go.mod" | head -1)"
  major=$(( ${client_go%%.*} + 1 )); minor="$(echo "$client_go" | cut -d. -f2)"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  log "building helm $HELM_VERSION (client-go v$client_go)"
  GOBIN="$work" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  mkdir -p "$out" && mv -f "$work/helm" "$out/helm" && rm -rf "$work"
  log "helm built in $((SECONDS - start)) s"
}

build_kind() {
  local out="$1" start=$SECONDS work
  work="$(mktemp -d)"
  log "building kind $KIND_VERSION"
  GOBIN="$work" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION" >&2
  mkdir -p "$out" && mv -f "$work/kind" "$out/kind" && rm -rf "$work"
  log "kind built in $((SECONDS - start)) s"
}

# CoreDNS with only the plugins a test cluster's DNS needs. `forward` is left out on
# purpose: no name outside the cluster ever gets an answer, so nothing in a pod can
# resolve (let alone reach) an outside host. The plugins register themselves in their
# init(); dnsserver's directive list only orders them.
build_coredns() {
  local out="$1" start=$SECONDS work
  work="$(mktemp -d)"
  log "building coredns $COREDNS_VERSION (bind ready health errors log cache kubernetes)"
  (
    cd "$work"
    go mod init lambdakube.dev/coredns >/dev/null 2>&1
    cat > main.go <<'GO'
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
GO
    GOFLAGS=-mod=mod GOTOOLCHAIN=local go get "github.com/coredns/coredns@$COREDNS_VERSION" >&2
    GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w" -o "$work/coredns" . >&2
  )
  mkdir -p "$out" && mv -f "$work/coredns" "$out/coredns" && rm -rf "$work"
  log "coredns built in $((SECONDS - start)) s"
}

# Lambda's emulator and its Python runtime client, the baseline of bench/router_overhead.py
# (not a test tool: `make test` never needs it). The wheel is the running interpreter's
# (PYTHON), installed beside the binary, never into the project's environment.
build_rie() {
  local out="$1" start=$SECONDS work
  work="$(mktemp -d)"
  log "building aws-lambda-rie $RIE_MODULE_VERSION + awslambdaric $AWSLAMBDARIC_VERSION"
  GOBIN="$work" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" \
    "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_MODULE_VERSION" >&2
  "${PYTHON:-python3}" -m pip install -q --target "$work/python" "awslambdaric==$AWSLAMBDARIC_VERSION" >&2
  mkdir -p "$out" && mv -f "$work/aws-lambda-rie" "$out/rie"
  rm -rf "$out/../python" && mv "$work/python" "$out/../python" && rm -rf "$work"
  log "rie built in $((SECONDS - start)) s"
}

for tool in "${want[@]}"; do version_of "$tool" >/dev/null; done  # unknown name: exit 2

# Which make target builds a tool: helm alone is all the fast suite needs of them.
make_hint_of() {
  case "$1" in
    helm) echo "run \`make helm\` first (\`make tools\` builds it too)" ;;
    rie) echo "run \`make rie\` first (\`make bench\` does)" ;;
    *) echo "run \`make tools\` first" ;;
  esac
}

if [ "$CHECK_ONLY" = 1 ]; then
  missing=0
  for tool in "${want[@]}"; do
    dir="$(bin_dir_of "$tool")"
    if [ ! -x "$dir/$tool" ]; then
      log "not built: $tool $(version_of "$tool") (no $dir/$tool): $(make_hint_of "$tool")"
      missing=1
    fi
  done
  [ "$missing" = 0 ] || exit 1
fi

mkdir -p "$LINK_DIR"
for tool in "${want[@]}"; do
  dir="$(bin_dir_of "$tool")"
  if [ ! -x "$dir/$tool" ]; then
    command -v go >/dev/null || { log "go is required (https://go.dev) to build $tool"; exit 1; }
    export CGO_ENABLED=0
    "build_$tool" "$dir"
  fi
  # Moved into place only after a successful build, so a half-built cache never looks
  # complete; the link dir always points at the pinned versions.
  ln -sfn "$dir/$tool" "$LINK_DIR/$tool"
done
echo "$LINK_DIR"
