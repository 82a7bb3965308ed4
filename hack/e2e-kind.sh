#!/usr/bin/env bash
# End to end on kind (`make e2e`): builds the images with docker, creates a kind
# cluster, loads the images into it, and runs the e2e suite (tests/e2e, the same
# scenarios `make test` runs on this machine's own real node) against it through
# LAMBDAKUBE_E2E_KUBECONFIG. The suite installs the chart itself.
#
# Needs Docker, internet (kind's node image, the images' base), go (helm/kind are built
# by hack/build-tools.sh), kubectl and curl. The cluster is deleted on exit, also on
# failure (KEEP_CLUSTER=1 keeps it for debugging). Any failed check stops the run.
#
# Environment:
#   CLUSTER_NAME     kind cluster name (default lambdakube-e2e)
#   KIND_NODE_IMAGE  node image (default: the kind release's own)
#   BASE_IMAGE       passed to hack/build-images.sh (e.g. a locally imported base)
#   SKIP_BUILD=1     use existing lambdakube/{lambdakube,runtime-python}:0.1.0 images
#   KEEP_CLUSTER=1   do not delete the cluster at the end
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

CLUSTER_NAME="${CLUSTER_NAME:-lambdakube-e2e}"
# The suite installs release `lk` into lambdakube-system (tests/e2e/cluster.py).
RELEASE_NS=lambdakube-system
TAG="${TAG:-0.1.0}"
MAIN_IMAGE="lambdakube/lambdakube:$TAG"
RUNTIME_IMAGE="lambdakube/runtime-python:$TAG"
WORK="$(mktemp -d)"
STEP_START=$SECONDS
CURRENT_STEP="setup"

# Colours on a terminal and in CI logs (GitHub renders ANSI), plain otherwise.
if [ -t 2 ] || [ -n "${CI:-}" ]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; else B= G= R= N=; fi
step() {
  CURRENT_STEP="$*"
  STEP_START=$SECONDS
  printf '\n%s==> [%s] %s%s\n' "$B" "$(date +%H:%M:%S)" "$*" "$N" >&2
}
ok()   { printf '    %sok%s %s (%ss)\n' "$G" "$N" "$*" "$((SECONDS - STEP_START))" >&2; }
info() { printf '    %s\n' "$*" >&2; }
fail() { printf '\n%sFAIL [%s]: %s%s\n' "$R" "$CURRENT_STEP" "$*" "$N" >&2; exit 1; }

# -- cleanup: diagnostics on failure, then the cluster goes ---------------------------
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ -n "${KUBECONFIG:-}" ] && [ -f "$KUBECONFIG" ]; then
    echo "---- diagnostics (exit $rc) ----" >&2
    kubectl get pods,functions,concurrencyquotas -A -o wide >&2
    kubectl -n "$RELEASE_NS" logs deploy/lk-lambdakube-operator --tail=80 >&2
    kubectl -n "$RELEASE_NS" logs deploy/lk-lambdakube-router --tail=80 >&2
    kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -40 >&2
  fi
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "KEEP_CLUSTER=1: cluster $CLUSTER_NAME kept (kind delete cluster --name $CLUSTER_NAME)" >&2
  elif [ "${CLUSTER_CREATED:-0}" = 1 ]; then
    echo "==> deleting kind cluster $CLUSTER_NAME" >&2
    kind delete cluster --name "$CLUSTER_NAME" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- 0. tools ---------------------------------------------------------------------------
step "preflight: tools"
for t in docker curl go; do command -v "$t" >/dev/null || fail "$t is required"; done
docker info >/dev/null 2>&1 || fail "cannot reach the Docker daemon"
TOOLS_BIN="$(bash hack/build-tools.sh)"
export PATH="$TOOLS_BIN:$PATH"
if ! command -v kubectl >/dev/null; then
  cp_bin="$(ls -d "${LAMBDAKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lambdakube}"/controlplane/*/bin 2>/dev/null | tail -1)"
  [ -n "$cp_bin" ] && [ -x "$cp_bin/kubectl" ] && export PATH="$PATH:$cp_bin"
fi
command -v kubectl >/dev/null || fail "kubectl is required (or run hack/build-controlplane.sh)"
info "helm $(helm version --short), $(kind version), kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1)"
ok "tools"

# -- 1. images --------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  step "images: using existing $MAIN_IMAGE, $RUNTIME_IMAGE (SKIP_BUILD=1)"
  docker image inspect "$MAIN_IMAGE" "$RUNTIME_IMAGE" >/dev/null || fail "images missing"
else
  step "images: build $MAIN_IMAGE and $RUNTIME_IMAGE"
  TAG="$TAG" bash hack/build-images.sh >/dev/null
fi
ok "images"

# -- 2. cluster -------------------------------------------------------------------------
step "kind: create cluster $CLUSTER_NAME"
kind delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
export KUBECONFIG="$WORK/kubeconfig"
CLUSTER_CREATED=1
kind create cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG" --wait 180s \
  ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} >&2 || fail "kind create cluster failed"
kubectl get nodes >&2
ok "cluster up"

step "kind: load images into the node(s)"
kind load docker-image --name "$CLUSTER_NAME" "$MAIN_IMAGE" "$RUNTIME_IMAGE" >&2
ok "images loaded"

# -- 3. the e2e suite (the same one `make test` runs on this machine's real node) -------
step "pytest tests/e2e against the kind cluster"
# The RBAC-from-audit module reads the real node's apiserver audit log, which kind's
# node does not give us: it runs on the real node (make test-e2e) only.
LAMBDAKUBE_E2E_KUBECONFIG="$KUBECONFIG" LAMBDAKUBE_E2E_STORAGE_CLASS=standard \
  "${PYTHON:-.venv/bin/python}" -m pytest -q tests/e2e \
  --deselect tests/e2e/test_98_rbac_from_audit.py >&2 || fail "e2e suite failed"
ok "e2e suite"

printf '\n%sE2E PASSED%s (%ss)\n' "$G" "$N" "$SECONDS" >&2
