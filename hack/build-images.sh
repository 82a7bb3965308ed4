#!/usr/bin/env bash
# Build lambdakube's two images with docker:
#
#   lambdakube/lambdakube:0.1.0       root Dockerfile: operator + router (`pip install .`)
#   lambdakube/runtime-python:0.1.0   runtime-image/Dockerfile (models.DEFAULT_RUNTIME_IMAGE)
#
# The build context is the repository's files as git sees them (tracked + untracked,
# minus .gitignore'd ones: no .venv, caches or build output), streamed as a tar, so no
# .dockerignore is needed and a dirty work tree builds what `git status` shows.
#
# Environment:
#   BASE_IMAGE      base for both Dockerfiles (their ARG BASE_IMAGE; default in the
#                   Dockerfiles: python:3.11-slim). Set it to a locally imported image to
#                   build without a registry, e.g. local/debian-python:bookworm.
#   TAG             image tag (default 0.1.0), REPO_PREFIX (default lambdakube)
#   DOCKER          docker binary (default: docker)
#   DOCKER_NETWORK  passed as `docker build --network` (e.g. host) when set
#   ONLY            "lambdakube" or "runtime" to build one image
#   SMOKE=0         skip the post-build smoke test (`<cmd> --help` inside the image)
#
# Prints the built image references on stdout, one per line.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${TAG:-0.1.0}"
REPO_PREFIX="${REPO_PREFIX:-lambdakube}"
DOCKER="${DOCKER:-docker}"
MAIN_IMAGE="$REPO_PREFIX/lambdakube:$TAG"
RUNTIME_IMAGE="$REPO_PREFIX/runtime-python:$TAG"

log() { echo "[build-images] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v "$DOCKER" >/dev/null || die "$DOCKER not found (install Docker)"
"$DOCKER" info >/dev/null 2>&1 || die "cannot reach the Docker daemon ($DOCKER info failed)"

build_args=()
[ -n "${BASE_IMAGE:-}" ] && build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -n "${DOCKER_NETWORK:-}" ] && build_args+=(--network "$DOCKER_NETWORK")

# tar of the files git considers part of the project under directory $1 (paths relative
# to the current directory, which is what `git ls-files` prints).
context_tar() {
  local dir="$1"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- "$dir" \
      | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
      | tar --null --no-recursion -c -f - -T -
  else
    tar -C "$dir" -c -f - --exclude .venv --exclude __pycache__ --exclude .git .
  fi
}

build() {  # image, context dir, Dockerfile path inside the context
  local image="$1" dir="$2" dockerfile="$3" start=$SECONDS
  # An undeclared build arg is silently ignored, and docker would then pull the default
  # base from a registry: refuse instead.
  if [ -n "${BASE_IMAGE:-}" ] && ! grep -q '^ARG BASE_IMAGE' "$dir/$dockerfile"; then
    die "$dir/$dockerfile does not declare ARG BASE_IMAGE, so BASE_IMAGE=$BASE_IMAGE cannot apply"
  fi
  log "building $image (context $dir, ${BASE_IMAGE:-default base})"
  if [ "$dir" = "." ]; then
    context_tar . | "$DOCKER" build "${build_args[@]}" -f "$dockerfile" -t "$image" - >&2
  else
    (cd "$dir" && context_tar .) | "$DOCKER" build "${build_args[@]}" -f "$dockerfile" -t "$image" - >&2
  fi
  log "$image built in $((SECONDS - start)) s"
}

smoke() {  # image, command...
  [ "${SMOKE:-1}" = 0 ] && return 0
  local image="$1"; shift
  "$DOCKER" run --rm --network none --user 10001:10001 --entrypoint "$1" "$image" "${@:2}" >/dev/null \
    || die "smoke test failed: $image: $*"
}

if [ "${ONLY:-lambdakube}" = lambdakube ]; then
  build "$MAIN_IMAGE" . Dockerfile
  smoke "$MAIN_IMAGE" lambdakube-router --help
  smoke "$MAIN_IMAGE" lambdakube-operator --help
  echo "$MAIN_IMAGE"
fi
if [ "${ONLY:-runtime}" = runtime ]; then
  [ -f runtime-image/Dockerfile ] || die "runtime-image/Dockerfile is missing (the runtime image's own Dockerfile)"
  build "$RUNTIME_IMAGE" runtime-image Dockerfile
  smoke "$RUNTIME_IMAGE" python3 -c "import lambdakube_runtime"
  echo "$RUNTIME_IMAGE"
fi
