#!/usr/bin/env bash
# Build lambdakube's two images with docker:
#
#   lambdakube/lambdakube:0.1.0       root Dockerfile: operator + router (`pip install .`)
#   lambdakube/runtime-python:0.1.0   runtime-image/Dockerfile (models.DEFAULT_RUNTIME_IMAGE)
#   lambdakube/runtime-nodejs:0.1.0   runtime-image/Dockerfile.nodejs (the same runtime on
#                                     a base with Debian's nodejs: DEFAULT_NODEJS_RUNTIME_IMAGE)
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
#   ONLY            "lambdakube", "runtime" or "runtime-nodejs" to build one image
#   SMOKE=0         skip the post-build smoke test (`<cmd> --help` inside the image)
#   SAVE_DIR        also `docker save` each image to SAVE_DIR/<name>-<hash>.tar (written
#                   under a temporary name, renamed when complete); <hash> is --hash's
#   BASE_HASH       a digest of the base image's own inputs, mixed into <hash>
#   NODEJS_BASE_IMAGE, NODEJS_BASE_HASH
#                   the same for the Node.js runtime image (default: BASE_IMAGE, BASE_HASH;
#                   without node in that base its Dockerfile installs Debian's nodejs)
#
# Prints the built image references on stdout, one per line; with SAVE_DIR,
# `<image> <archive>` per line.
#
#   hack/build-images.sh --hash   prints `<image> <hash>` per image and builds nothing
#                                 (no docker needed). <hash> covers the Dockerfile, the
#                                 context files (paths, modes, contents), BASE_IMAGE and
#                                 BASE_HASH: the cache key of hack/build-node-images.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${TAG:-0.1.0}"
REPO_PREFIX="${REPO_PREFIX:-lambdakube}"
DOCKER="${DOCKER:-docker}"
MAIN_IMAGE="$REPO_PREFIX/lambdakube:$TAG"
RUNTIME_IMAGE="$REPO_PREFIX/runtime-python:$TAG"
NODEJS_IMAGE="$REPO_PREFIX/runtime-nodejs:$TAG"
NODEJS_BASE_IMAGE="${NODEJS_BASE_IMAGE:-${BASE_IMAGE:-}}"
NODEJS_BASE_HASH="${NODEJS_BASE_HASH:-${BASE_HASH:-}}"

log() { echo "[build-images] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

net_args=()
[ -n "${DOCKER_NETWORK:-}" ] && net_args+=(--network "$DOCKER_NETWORK")

# What a Dockerfile's COPY instructions take from the context (not `COPY --from`), one
# per line: only these and the Dockerfile are sent and hashed, so an edit to tests/ or
# hack/ neither rebuilds an image nor changes its cache key.
copy_sources() {  # Dockerfile (path relative to the current directory)
  awk 'toupper($1) == "COPY" {
         n = 0
         for (i = 2; i <= NF; i++) { if ($i ~ /^--from/) next; if ($i !~ /^--/) a[++n] = $i }
         for (i = 1; i < n; i++) print a[i]
       }' "$1"
}

# The files of the context that the Dockerfile uses, NUL-separated, paths relative to
# the current directory (the context dir): those git considers part of the project
# (tracked + untracked-not-ignored) when in a checkout.
context_files() {  # Dockerfile
  local sources=()
  mapfile -t sources < <(copy_sources "$1")
  printf '%s\0' "$1"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- "${sources[@]}" \
      | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh
  else
    # shellcheck disable=SC2068  # the sources may be globs (README*)
    find ${sources[@]} \( -name .venv -o -name __pycache__ -o -name .git \) -prune \
      -o \( -type f -o -type l \) -print0 2>/dev/null
  fi
}

context_tar() {  # Dockerfile
  context_files "$1" | sort -zu | tar --null --no-recursion -c -f - -T -
}

# Cache key of one image: 16 hex digits of a sha256 over its base image and base hash,
# the Dockerfile, and the path, mode (and link target) and content of every file it COPYs.
context_hash() {  # context dir, Dockerfile path inside the context, base image, base hash
  (
    cd "$1"
    printf 'BASE_IMAGE=%s\nBASE_HASH=%s\n' "${3:-}" "${4:-}"
    context_files "$2" | sort -zu | xargs -0 -r stat -c '%A %N' --
    context_files "$2" | sort -zu | xargs -0 -r sh -c 'for f; do [ -L "$f" ] || printf "%s\0" "$f"; done' sh \
      | xargs -0 -r sha256sum --
  ) | sha256sum | cut -c1-16
}

save() {  # image, hash: docker save to ARCHIVE=SAVE_DIR/<name>-<hash>.tar
  local image="$1" name
  name="${image%:*}"; name="${name##*/}"
  ARCHIVE="$SAVE_DIR/$name-$2.tar"
  mkdir -p "$SAVE_DIR"
  PARTIAL="$ARCHIVE.partial.$$"
  "$DOCKER" save -o "$PARTIAL" "$image" || die "docker save $image failed"
  chmod 0644 "$PARTIAL"
  mv -f "$PARTIAL" "$ARCHIVE"
  PARTIAL=
}
PARTIAL=
trap '[ -z "$PARTIAL" ] || rm -f "$PARTIAL"' EXIT

# The selected images, one line each: image, context dir, Dockerfile, base image, base
# hash ("-" for none: read splits on blanks).
images() {
  if [ "${ONLY:-lambdakube}" = lambdakube ]; then echo "$MAIN_IMAGE . Dockerfile ${BASE_IMAGE:--} ${BASE_HASH:--}"; fi
  if [ "${ONLY:-runtime}" = runtime ]; then echo "$RUNTIME_IMAGE runtime-image Dockerfile ${BASE_IMAGE:--} ${BASE_HASH:--}"; fi
  if [ "${ONLY:-runtime-nodejs}" = runtime-nodejs ]; then
    echo "$NODEJS_IMAGE runtime-image Dockerfile.nodejs ${NODEJS_BASE_IMAGE:--} ${NODEJS_BASE_HASH:--}"
  fi
}
unset_dash() { [ "$1" = - ] && echo "" || echo "$1"; }

if [ "${1:-}" = --hash ]; then
  images | while read -r image dir dockerfile base base_hash; do
    echo "$image $(context_hash "$dir" "$dockerfile" "$(unset_dash "$base")" "$(unset_dash "$base_hash")")"
  done
  exit 0
fi

command -v "$DOCKER" >/dev/null || die "$DOCKER not found (install Docker)"
"$DOCKER" info >/dev/null 2>&1 || die "cannot reach the Docker daemon ($DOCKER info failed)"

build() {  # image, context dir, Dockerfile path inside the context, base image, base hash
  local image="$1" dir="$2" dockerfile="$3" base="${4:-}" start=$SECONDS build_args=("${net_args[@]}")
  [ -n "$base" ] && build_args+=(--build-arg "BASE_IMAGE=$base")
  # An undeclared build arg is silently ignored, and docker would then pull the default
  # base from a registry: refuse instead.
  if [ -n "$base" ] && ! grep -q '^ARG BASE_IMAGE' "$dir/$dockerfile"; then
    die "$dir/$dockerfile does not declare ARG BASE_IMAGE, so BASE_IMAGE=$base cannot apply"
  fi
  log "building $image (context $dir, ${base:-default base})"
  # The key is taken before the context is sent: an edit during the build makes a
  # stale-named archive impossible (it can only make the next run rebuild).
  BUILT_HASH="$(context_hash "$dir" "$dockerfile" "$base" "${5:-}")"
  if [ "$dir" = "." ]; then
    context_tar "$dockerfile" | "$DOCKER" build "${build_args[@]}" -f "$dockerfile" -t "$image" - >&2
  else
    (cd "$dir" && context_tar "$dockerfile") | "$DOCKER" build "${build_args[@]}" -f "$dockerfile" -t "$image" - >&2
  fi
  log "$image built in $((SECONDS - start)) s"
}

smoke() {  # image, command...
  [ "${SMOKE:-1}" = 0 ] && return 0
  local image="$1"; shift
  "$DOCKER" run --rm --network none --user 10001:10001 --entrypoint "$1" "$image" "${@:2}" >/dev/null \
    || die "smoke test failed: $image: $*"
}

report() {  # image (the one just built)
  if [ -n "${SAVE_DIR:-}" ]; then
    save "$1" "$BUILT_HASH"
    echo "$1 $ARCHIVE"
  else
    echo "$1"
  fi
}

if [ "${ONLY:-lambdakube}" = lambdakube ]; then
  build "$MAIN_IMAGE" . Dockerfile "${BASE_IMAGE:-}" "${BASE_HASH:-}"
  smoke "$MAIN_IMAGE" lambdakube-router --help
  smoke "$MAIN_IMAGE" lambdakube-operator --help
  report "$MAIN_IMAGE"
fi
if [ "${ONLY:-runtime}" = runtime ]; then
  [ -f runtime-image/Dockerfile ] || die "runtime-image/Dockerfile is missing (the runtime image's own Dockerfile)"
  build "$RUNTIME_IMAGE" runtime-image Dockerfile "${BASE_IMAGE:-}" "${BASE_HASH:-}"
  smoke "$RUNTIME_IMAGE" python3 -c "import lambdakube_runtime"
  report "$RUNTIME_IMAGE"
fi
if [ "${ONLY:-runtime-nodejs}" = runtime-nodejs ]; then
  [ -f runtime-image/Dockerfile.nodejs ] || die "runtime-image/Dockerfile.nodejs is missing"
  build "$NODEJS_IMAGE" runtime-image Dockerfile.nodejs "$NODEJS_BASE_IMAGE" "$NODEJS_BASE_HASH"
  smoke "$NODEJS_IMAGE" node -e "require('node:async_hooks')"
  smoke "$NODEJS_IMAGE" python3 -c "import lambdakube_runtime"
  report "$NODEJS_IMAGE"
fi
