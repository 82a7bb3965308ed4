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
#   ~/.cache/lambdakube/tools/lambdago-<version>-<hash>/bin/lambdago (test only: a Lambda
#       function built with github.com/aws/aws-lambda-go from tests/runtime/clients/go)
#   ~/.cache/lambdakube/tools/noderic-<version>/bin/noderic (test only: aws-lambda-ric from
#       npm, Lambda's Node.js runtime interface client, in noderic-<version>/node_modules)
#   ~/.cache/lambdakube/tools/nodesdk-<version>/bin/nodesdk (test only: @aws-sdk/client-lambda
#       from npm in nodesdk-<version>/node_modules, for Node.js handlers that invoke others)
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
AWS_LAMBDA_GO_VERSION="${AWS_LAMBDA_GO_VERSION:-v1.55.1}"
AWS_LAMBDA_RIC_NPM_VERSION="${AWS_LAMBDA_RIC_NPM_VERSION:-4.0.2}"
AWS_SDK_CLIENT_LAMBDA_VERSION="${AWS_SDK_CLIENT_LAMBDA_VERSION:-3.1178.0}"
LAMBDA_GO_SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/runtime/clients/go/main.go"
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
    lambdago) echo "$AWS_LAMBDA_GO_VERSION-$(sha256sum "$LAMBDA_GO_SOURCE" | cut -c1-12)" ;;
    noderic) echo "$AWS_LAMBDA_RIC_NPM_VERSION" ;;
    nodesdk) echo "$AWS_SDK_CLIENT_LAMBDA_VERSION" ;;
    *) log "unknown tool: $1 (helm, kind, coredns, rie, lambdago, noderic, nodesdk)"; exit 2 ;;
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

# The Runtime API conformance test's Go function: tests/runtime/clients/go/main.go with
# aws-lambda-go from the Go module proxy, a static binary (the `provided` runtime's
# bootstrap), keyed by the library's version and the source's hash.
build_lambdago() {
  local out="$1" start=$SECONDS work
  work="$(mktemp -d)"
  log "building the aws-lambda-go $AWS_LAMBDA_GO_VERSION test function"
  (
    cd "$work"
    cp "$LAMBDA_GO_SOURCE" main.go
    go mod init lambdakube.dev/lambdago >/dev/null 2>&1
    GOFLAGS=-mod=mod GOTOOLCHAIN=local go get "github.com/aws/aws-lambda-go@$AWS_LAMBDA_GO_VERSION" >&2
    GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w" -o "$work/lambdago" . >&2
  )
  mkdir -p "$out" && mv -f "$work/lambdago" "$out/lambdago" && rm -rf "$work"
  log "lambdago built in $((SECONDS - start)) s"
}

# aws-lambda-ric from npm (the registry, through npm; its cache under the tools dir). Its
# preinstall builds libcurl from the package's bundled sources with autoreconf, then a
# node-gyp addon: it needs autoconf, automake, libtool, make, g++ and cmake (Debian's),
# and fails without them ("./buildconf: exec: autoreconf: not found"). It declares node
# >= 22; it runs on Debian's node 20 (tests/runtime/test_runtime_api_clients.py).
build_noderic() {
  local out="$1" start=$SECONDS work missing=()
  for cmd in autoreconf automake libtoolize make g++ cmake npm node; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "aws-lambda-ric's native build needs: ${missing[*]} (apt-get install autoconf automake libtool make g++ cmake npm)"
    exit 1
  fi
  work="$(mktemp -d)"
  log "building aws-lambda-ric $AWS_LAMBDA_RIC_NPM_VERSION (npm; libcurl and a native addon)"
  npm install --prefix "$work" --cache "$TOOLS/.npm-cache" --no-audit --no-fund --loglevel=error \
    "aws-lambda-ric@$AWS_LAMBDA_RIC_NPM_VERSION" >&2
  [ -f "$work/node_modules/aws-lambda-ric/rapid-client.node" ] \
    || { log "aws-lambda-ric installed without its native addon (rapid-client.node)"; exit 1; }
  mkdir -p "$work/bin"
  cat > "$work/bin/noderic" <<'SH'
#!/bin/sh
# aws-lambda-ric <module>.<handler>: Lambda's Node.js runtime interface client.
exec "${LAMBDAKUBE_NODE:-node}" "$(dirname "$(readlink -f "$0")")/../node_modules/aws-lambda-ric/index.mjs" "$@"
SH
  chmod +x "$work/bin/noderic"
  rm -rf "$(dirname "$out")" && mkdir -p "$TOOLS" && mv "$work" "$(dirname "$out")"
  log "noderic built in $((SECONDS - start)) s"
}

# @aws-sdk/client-lambda from npm (plain JavaScript, no build): what a Node.js handler uses
# to invoke another function. bin/nodesdk prints its node_modules directory.
build_nodesdk() {
  local out="$1" start=$SECONDS work
  command -v npm >/dev/null || { log "npm is required for @aws-sdk/client-lambda (apt-get install npm)"; exit 1; }
  work="$(mktemp -d)"
  log "installing @aws-sdk/client-lambda $AWS_SDK_CLIENT_LAMBDA_VERSION (npm)"
  npm install --prefix "$work" --cache "$TOOLS/.npm-cache" --no-audit --no-fund --loglevel=error \
    "@aws-sdk/client-lambda@$AWS_SDK_CLIENT_LAMBDA_VERSION" >&2
  mkdir -p "$work/bin"
  printf '#!/bin/sh\necho "$(dirname "$(readlink -f "$0")")/../node_modules"\n' > "$work/bin/nodesdk"
  chmod +x "$work/bin/nodesdk"
  rm -rf "$(dirname "$out")" && mkdir -p "$TOOLS" && mv "$work" "$(dirname "$out")"
  log "nodesdk built in $((SECONDS - start)) s"
}

for tool in "${want[@]}"; do version_of "$tool" >/dev/null; done  # unknown name: exit 2

# Which make target builds a tool: helm alone is all the fast suite needs of them.
make_hint_of() {
  case "$1" in
    helm) echo "run \`make helm\` first (\`make tools\` builds it too)" ;;
    rie) echo "run \`make rie\` first (\`make bench\` and \`make runtime-clients\` do)" ;;
    lambdago) echo "run \`make lambda-go\` first (\`make runtime-clients\` does)" ;;
    nodesdk) echo "run \`make node-sdk\` first (\`make runtime-clients\` does)" ;;
    noderic) echo "run \`make node-ric\` first (\`make runtime-clients\` does; needs autoconf automake libtool g++ cmake)" ;;
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
