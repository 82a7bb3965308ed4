#!/usr/bin/env bash
# End to end on kind (`make e2e`): a real cluster, the chart, the examples, and the
# Lambda behaviours that only show up with real pods:
#
#   1. cold start      first call to `hello` answers with X-Cold-Start: true
#   2. warm reuse      the next call reuses that environment: X-Cold-Start: false
#   3. throttle        a function with reservedConcurrency 1 and a slow handler; two
#                      concurrent calls -> exactly one 429 TooManyRequestsException
#   4. scale to zero   a function with a short idleTimeoutSeconds: its pods go away
#
# Needs Docker, internet (kind's node image, the images' base), go (helm/kind are built
# by hack/build-tools.sh), kubectl and curl. The cluster is deleted on exit, also on
# failure (KEEP_CLUSTER=1 keeps it for debugging). Any failed check stops the run.
#
# Environment:
#   CLUSTER_NAME     kind cluster name (default lambdakube-e2e)
#   KIND_NODE_IMAGE  node image (default: the kind release's own)
#   RELEASE_NS       namespace of the helm release (default lambdakube-system)
#   FUNCTIONS_NS     namespace of the examples (default default)
#   BASE_IMAGE       passed to hack/build-images.sh (e.g. a locally imported base)
#   SKIP_BUILD=1     use existing lambdakube/{lambdakube,runtime-python}:0.1.0 images
#   KEEP_CLUSTER=1   do not delete the cluster at the end
#   LOCAL_PORT       local port of the router port-forward (default 19000)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

CLUSTER_NAME="${CLUSTER_NAME:-lambdakube-e2e}"
RELEASE="${RELEASE:-lambdakube}"
RELEASE_NS="${RELEASE_NS:-lambdakube-system}"
FUNCTIONS_NS="${FUNCTIONS_NS:-default}"
LOCAL_PORT="${LOCAL_PORT:-19000}"
TAG="${TAG:-0.1.0}"
MAIN_IMAGE="lambdakube/lambdakube:$TAG"
RUNTIME_IMAGE="lambdakube/runtime-python:$TAG"
ROUTER="http://127.0.0.1:$LOCAL_PORT"
WORK="$(mktemp -d)"
PF_PID=""
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

# -- cleanup: diagnostics on failure, then the port-forward and the cluster go ----------
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ -n "${KUBECONFIG:-}" ] && [ -f "$KUBECONFIG" ]; then
    echo "---- diagnostics (exit $rc) ----" >&2
    kubectl get pods,functions,concurrencyquotas -A -o wide >&2
    kubectl -n "$RELEASE_NS" logs "deploy/$RELEASE-operator" --tail=80 >&2
    kubectl -n "$RELEASE_NS" logs "deploy/$RELEASE-router" --tail=80 >&2
    kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -40 >&2
    [ -f "$WORK/port-forward.log" ] && tail -20 "$WORK/port-forward.log" >&2
  fi
  [ -n "$PF_PID" ] && kill "$PF_PID" 2>/dev/null
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

# -- helpers ----------------------------------------------------------------------------

# invoke <function> <payload> <outfile-prefix>: writes <prefix>.headers/.body, prints the
# HTTP status (000 when the connection failed; callers check it and fail with context)
invoke() {
  : >"$3.body"; : >"$3.headers"
  curl -sS -o "$3.body" -D "$3.headers" -w '%{http_code}' --max-time 60 \
    -X POST -H 'Content-Type: application/json' \
    -H "X-Lambdakube-Namespace: $FUNCTIONS_NS" \
    --data "$2" "$ROUTER/2015-03-31/functions/$1/invocations" || true
}

header() {  # header <file> <name>: value of a response header (case-insensitive)
  awk -v h="$(echo "$2" | tr '[:upper:]' '[:lower:]')" -F': *' \
    'tolower($1) == h { sub(/\r$/, "", $2); print $2 }' "$1" | tail -1
}

# wait_for <seconds> <description> <command...>: retry until the command succeeds
wait_for() {
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${deadline}s waiting for: $what"
    sleep 2
  done
}

function_pods() {  # number of pods of function $1 (label set by the operator/router)
  kubectl -n "$FUNCTIONS_NS" get pods -l "lambdakube.dev/function=$1" \
    --field-selector=status.phase!=Succeeded,status.phase!=Failed -o name | wc -l
}

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

# -- 3. chart ---------------------------------------------------------------------------
step "helm install $RELEASE into $RELEASE_NS"
helm install "$RELEASE" charts/lambdakube \
  --namespace "$RELEASE_NS" --create-namespace \
  --set image.pullPolicy=IfNotPresent \
  --set "image.tag=$TAG" \
  --set "runtime.image=$RUNTIME_IMAGE" \
  --set router.logLevel=DEBUG \
  --wait --timeout 5m >&2 || fail "helm install failed (pods not ready?)"
kubectl -n "$RELEASE_NS" get deploy,pods,svc >&2
ok "chart installed; operator and router ready"

# -- 4. functions -----------------------------------------------------------------------
step "kubectl apply -f examples/ (+ the e2e's own throttle/idle functions)"
kubectl apply -n "$FUNCTIONS_NS" -f examples/ >&2
cat > "$WORK/e2e-functions.yaml" <<'EOF'
# reservedConcurrency 1 and a slow handler: a second concurrent call must be throttled.
apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata:
  name: e2e-throttle
spec:
  handler: index.handler
  reservedConcurrency: 1
  timeoutSeconds: 30
  code:
    inline:
      source: |
        import time

        def handler(event, context):
            time.sleep(float(event.get("sleep", 5)))
            return {"slept": True}
---
# Reaped quickly: scale to zero is observable within the test.
apiVersion: lambdakube.dev/v1alpha1
kind: Function
metadata:
  name: e2e-idle
spec:
  handler: index.handler
  idleTimeoutSeconds: 5
  code:
    inline:
      source: |
        def handler(event, context):
            return {"ok": True}
EOF
kubectl apply -n "$FUNCTIONS_NS" -f "$WORK/e2e-functions.yaml" >&2
kubectl get functions -n "$FUNCTIONS_NS" >&2
ok "functions applied"

step "port-forward the router to 127.0.0.1:$LOCAL_PORT"
kubectl -n "$RELEASE_NS" port-forward "svc/$RELEASE-router" "$LOCAL_PORT:9000" \
  >"$WORK/port-forward.log" 2>&1 &
PF_PID=$!
wait_for 30 "router /healthz through the port-forward" curl -sf --max-time 2 "$ROUTER/healthz"
router_knows() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    "$ROUTER/lambdakube/v1/namespaces/$FUNCTIONS_NS/functions/$1")" = 200 ]
}
for fn in hello e2e-throttle e2e-idle; do
  wait_for 60 "router to see function $fn" router_knows "$fn"
done
ok "router reachable and sees the functions"

# -- 5. checks --------------------------------------------------------------------------
step "cold start: first invocation of hello"
status="$(invoke hello '{"name":"e2e"}' "$WORK/cold")"
[ "$status" = 200 ] || fail "hello: HTTP $status: $(cat "$WORK/cold.body")"
cold="$(header "$WORK/cold.headers" X-Cold-Start)"
info "body: $(cat "$WORK/cold.body")"
[ "$cold" = true ] || fail "expected X-Cold-Start: true, got '${cold}'"
grep -q 'hello, e2e!' "$WORK/cold.body" || fail "unexpected body"
ok "X-Cold-Start: true"

step "warm reuse: second invocation of hello"
status="$(invoke hello '{"name":"again"}' "$WORK/warm")"
[ "$status" = 200 ] || fail "hello: HTTP $status: $(cat "$WORK/warm.body")"
warm="$(header "$WORK/warm.headers" X-Cold-Start)"
[ "$warm" = false ] || fail "expected X-Cold-Start: false, got '${warm}'"
ok "X-Cold-Start: false"

step "throttle: 2 concurrent calls to e2e-throttle (reservedConcurrency 1)"
# Warm it first, so the throttle is decided by concurrency, not by a cold start's timing.
status="$(invoke e2e-throttle '{"sleep":0}' "$WORK/t0")"
[ "$status" = 200 ] || fail "e2e-throttle warm-up: HTTP $status: $(cat "$WORK/t0.body")"
invoke e2e-throttle '{"sleep":5}' "$WORK/t1" >"$WORK/t1.status" &
p1=$!
sleep 1
invoke e2e-throttle '{"sleep":5}' "$WORK/t2" >"$WORK/t2.status" &
p2=$!
wait "$p1" "$p2" || true
s1="$(cat "$WORK/t1.status")"; s2="$(cat "$WORK/t2.status")"
info "statuses: $s1 $s2"
statuses="$(printf '%s\n%s\n' "$s1" "$s2" | sort | tr '\n' ' ')"
[ "$statuses" = "200 429 " ] || fail "expected one 200 and one 429, got: $statuses"
for i in 1 2; do
  if [ "$(cat "$WORK/t$i.status")" = 429 ]; then
    info "429 body: $(cat "$WORK/t$i.body")"
    { grep -q TooManyRequestsException "$WORK/t$i.body" \
      || [ "$(header "$WORK/t$i.headers" x-amzn-ErrorType)" = TooManyRequestsException ]; } \
      || fail "429 without TooManyRequestsException"
  fi
done
ok "one 200, one 429 TooManyRequestsException"

step "scale to zero: e2e-idle (idleTimeoutSeconds 5)"
status="$(invoke e2e-idle '{}' "$WORK/idle")"
[ "$status" = 200 ] || fail "e2e-idle: HTTP $status: $(cat "$WORK/idle.body")"
info "pods after the call: $(function_pods e2e-idle)"
[ "$(function_pods e2e-idle)" -ge 1 ] || fail "no pod for e2e-idle after an invocation"
no_pods() { [ "$(function_pods e2e-idle)" -eq 0 ]; }
wait_for 90 "e2e-idle's pods to be reaped" no_pods
ok "e2e-idle scaled to zero"

step "done"
printf '\n%sE2E PASSED%s (%ss)\n' "$G" "$N" "$SECONDS" >&2
