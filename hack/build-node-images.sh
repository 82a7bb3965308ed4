#!/usr/bin/env bash
# Build the images a real Kubernetes node needs, offline and cached, as `docker save`
# archives for `ctr -n k8s.io images import <tar>`:
#
#   lambdakube.dev/pause:3.10                 hack/pause/pause.c, static, one file
#   docker.io/lambdakube/runtime-python:0.1.0 runtime-image/Dockerfile
#   docker.io/lambdakube/runtime-nodejs:0.1.0 runtime-image/Dockerfile.nodejs (base + Debian's nodejs)
#   docker.io/lambdakube/lambdakube:0.1.0     root Dockerfile (operator + router)
#
# Why: there is no container registry here, so nothing can be pulled. The pause image
# is written directly (hack/oci_archive.py); the Python base is debootstrapped from the
# Debian mirror apt already uses and loaded into a private dockerd as
# local/debian-python:bookworm (and, with Debian's nodejs too, as
# local/debian-python-nodejs:bookworm); the project images are built from their real
# Dockerfiles by hack/build-images.sh (the Dockerfiles stay the one source of truth).
#
# Cache: ${LAMBDAKUBE_CACHE:-$HOME/.cache/lambdakube}/images/<name>-<hash>.tar, where
# <hash> covers exactly the inputs: pause.c + oci_archive.py (+ the recipe); for the base,
# the suite, package list, recipe, oci_archive.py and the host CA bundle copied into it;
# for each project image, what `hack/build-images.sh --hash` covers plus the base's hash.
# A fully cached run builds nothing and starts no daemon. Archives appear by rename only
# when complete. The private dockerd keeps its layers in the cache (docker/), so a
# source edit rebuilds the main image without reinstalling its dependencies.
#
#   bash hack/build-node-images.sh     (as root; missing tools: hack/install-node-deps.sh)
#   bash hack/build-node-images.sh --check
#     the same stdout if every archive is cached, else names the missing ones and
#     `make images`, exit 1; never builds, needs no root. The tests locate the images this
#     way (a build inside a test's timeout would fail it on a fresh machine), so this
#     script stays the one place that knows the archives' names. LAMBDAKUBE_NO_BUILD=1
#     means --check too (tests/conftest.py sets it for everything the tests run).
#
# stdout: one line per image, `<image-ref> <archive-path>` (pause, runtime, main,
# runtime-nodejs); the
# ref is the name `ctr images ls` shows after the import.
# stderr: the time of each phase (`[build-node-images] base: 74.0 s` or `cached`).
# Build logs go to images/<name>.log (VERBOSE=1 streams them to stderr instead).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LAMBDAKUBE_CACHE:-$HOME/.cache/lambdakube}"
IMAGES="$CACHE/images"
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
BASE_IMAGE=local/debian-python:bookworm
NODEJS_BASE_PACKAGES=$BASE_PACKAGES,nodejs
NODEJS_BASE_IMAGE=local/debian-python-nodejs:bookworm
PAUSE_IMAGE=lambdakube.dev/pause:3.10
HOST_CA=/etc/ssl/certs/ca-certificates.crt
BASE_ENV=(
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  LANG=C.UTF-8
  PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
)

log() { echo "[build-node-images] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
digest() { sha256sum | cut -c1-16; }

# ---- the recipes (their text is part of their image's hash) ----------------------------

build_pause() {  # archive
  local work
  tmpdir pause; work="$TMP"
  gcc -Os -static -s -o "$work/pause" hack/pause/pause.c
  python3 hack/oci_archive.py "$work/pause" "$1" --ref "$PAUSE_IMAGE" \
    --entrypoint '["/pause"]' --user 65535:65535
  remove_tmpdir "$work"
}

build_base() {  # archive [packages image log-name]: the Python base (or another, e.g. with nodejs)
  local work mirror env_args=() e packages="${2:-$BASE_PACKAGES}" ref="${3:-$BASE_IMAGE}" name="${4:-debian-python}"
  tmpdir base; work="$TMP"
  mirror="$(debian_mirror)"
  log "debootstrap $SUITE with $packages from $mirror (log: $IMAGES/$name.log)"
  run_child "$IMAGES/$name.log" \
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$work/rootfs" "$mirror" \
    2>&1 || fail_with_log "$IMAGES/$name.log" debootstrap
  unmount_under "$work"  # debootstrap unmounts its /proc and /sys itself; be sure
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  # The host's names do not belong in an image; the runtime mounts its own.
  : > "$work/rootfs/etc/resolv.conf"
  : > "$work/rootfs/etc/hostname"
  # Registry traffic goes through an intercepting proxy whose CA only the host bundle has.
  cp "$HOST_CA" "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  for e in "${BASE_ENV[@]}"; do env_args+=(--env "$e"); done
  python3 hack/oci_archive.py "$work/rootfs" "$1" --ref "$ref" --cmd '["python3"]' "${env_args[@]}"
  remove_tmpdir "$work"
}

pause_hash() {
  { cat hack/pause/pause.c hack/oci_archive.py; declare -f build_pause; } | digest
}

base_hash() {  # [packages image]
  { echo "$SUITE ${1:-$BASE_PACKAGES}"; [ -z "${2:-}" ] || echo "$2"; printf '%s\n' "${BASE_ENV[@]}"
    declare -f build_base; cat hack/oci_archive.py "$HOST_CA"; } | digest
}

# The first URI apt uses for $SUITE: deb822 debian.sources, else the one-line sources.list.
debian_mirror() {
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri="$(awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
      uris = ""; ok = 0
      for (i = 1; i <= NF; i++) {
        n = split($i, w, /[ \t]+/)
        if (w[1] == "URIs:") uris = w[2]
        if (w[1] == "Suites:") for (j = 2; j <= n; j++) if (w[j] == suite) ok = 1
      }
      if (ok && uris != "") { print uris; exit }
    }' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri="$(awk -v suite="$SUITE" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit }
    }' /etc/apt/sources.list)"
  fi
  [ -n "$uri" ] || die "no apt source for $SUITE in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  echo "$uri"
}

# ---- temporary directories and mounts --------------------------------------------------

TMPDIRS=()
tmpdir() {  # what: TMP=a fresh directory beside the archives (same filesystem, for rename)
  TMP="$(mktemp -d "$IMAGES/.tmp-$1.XXXXXX")"
  TMPDIRS+=("$TMP")
}

mounts_under() {  # dir: the mount points at or below it, deepest first
  awk -v d="$(realpath -m "$1")" '$5 == d || index($5, d "/") == 1 { print $5 }' \
    /proc/self/mountinfo | sort -r
}

unmount_under() {  # dir
  local m
  mounts_under "$1" | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}

remove_tmpdir() {  # dir: never delete through a mount
  unmount_under "$1"
  if [ -n "$(mounts_under "$1")" ]; then
    log "WARNING: $1 still has mounts; left in place"
    return 0
  fi
  rm -rf --one-file-system "$1"
}

clean_stale() {  # leftovers of a run that was killed (we hold the lock)
  local d
  for d in "$IMAGES"/.tmp-* "$IMAGES"/.oci-archive.*; do
    if [ -d "$d" ]; then remove_tmpdir "$d"; fi
  done
  rm -f "$IMAGES"/*.partial.*
}

prune_old() {  # archive just made: keep it and the one before it, drop older ones
  local name="${1%-*}" old
  ls -t "$name"-????????????????.tar 2>/dev/null | tail -n +3 | while read -r old; do
    rm -f "$old"
  done
}

# Long steps run in their own process group, and we wait for them with `wait`: a signal
# then interrupts us at once (bash defers traps until a foreground command ends), and
# cleanup can end the whole step by its group id.
CHILD=""
run_child() {  # stdout file, command...
  local out="$1" rc=0
  shift
  setsid "$@" > "$out" 9>&- &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

stop_child() {
  [ -n "$CHILD" ] || return 0
  kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
  wait "$CHILD" 2>/dev/null || true
  CHILD=""
}

fail_with_log() {  # log file, what
  tail -n 40 "$1" >&2 || true
  die "$2 failed (full log: $1)"
}

# ---- the private dockerd ---------------------------------------------------------------

DOCKERD_PID=""
RUN_DIR=""

start_dockerd() {
  local i
  RUN_DIR="$(mktemp -d /tmp/lk-dockerd.XXXXXX)"  # short: unix socket paths max 107 bytes
  echo '{}' > "$RUN_DIR/daemon.json"            # not the host's /etc/docker/daemon.json
  mkdir -p "$CACHE/docker"
  # The proxy variables point at a closed loopback port: the daemon itself can never pull
  # from a registry. Builds use --network host and reach PyPI directly. No bridge, no
  # iptables rules, no ip_forward change: the host's network is left as it is.
  env HTTP_PROXY=http://127.0.0.1:1 HTTPS_PROXY=http://127.0.0.1:1 NO_PROXY= \
      http_proxy=http://127.0.0.1:1 https_proxy=http://127.0.0.1:1 no_proxy= \
    dockerd --config-file "$RUN_DIR/daemon.json" --data-root "$CACHE/docker" \
      --exec-root "$RUN_DIR/exec" --pidfile "$RUN_DIR/dockerd.pid" -H "unix://$RUN_DIR/docker.sock" \
      --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
      > "$RUN_DIR/dockerd.log" 2>&1 9>&- &
  DOCKERD_PID=$!
  export DOCKER_HOST="unix://$RUN_DIR/docker.sock" DOCKER_CONFIG="$RUN_DIR/cli" DOCKER_BUILDKIT=0
  for i in $(seq 1 300); do
    "$DOCKER" version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || fail_with_log "$RUN_DIR/dockerd.log" "dockerd"
    sleep 0.2
  done
  fail_with_log "$RUN_DIR/dockerd.log" "dockerd (not ready in 60 s)"
}

stop_pid() {  # pid: TERM, up to 30 s, then KILL
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for i in $(seq 1 150); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$1" 2>/dev/null || true
}

stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  local ctr_pid
  # dockerd runs its own containerd; remember it, to be sure it goes too.
  ctr_pid="$(cat "$RUN_DIR/exec/containerd/containerd.pid" 2>/dev/null || true)"
  stop_pid "$DOCKERD_PID"
  wait "$DOCKERD_PID" 2>/dev/null || true
  if [ -n "$ctr_pid" ] && tr '\0' ' ' 2>/dev/null < "/proc/$ctr_pid/cmdline" | grep -qF "$RUN_DIR/"; then
    stop_pid "$ctr_pid"
  fi
  DOCKERD_PID=""
  unmount_under "$CACHE/docker"
  remove_tmpdir "$RUN_DIR"
}

load_base() {  # archive [image]: docker load it unless the daemon already has that exact image
  local want have
  want="sha256:$(tar -xOf "$1" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Config"][:-5])')"
  have="$("$DOCKER" image inspect -f '{{.Id}}' "${2:-$BASE_IMAGE}" 2>/dev/null || true)"
  [ "$have" = "$want" ] || "$DOCKER" load -q -i "$1" >/dev/null
}

build_project_image() {  # ONLY value, expected archive; prints build-images.sh's line
  local out logf="$IMAGES/$(basename "${2%-*}").log"
  if [ "${VERBOSE:-0}" = 1 ]; then logf=/dev/stderr; fi
  run_child "$RUN_DIR/build.out" env ONLY="$1" SAVE_DIR="$IMAGES" BASE_IMAGE="$BASE_IMAGE" \
      BASE_HASH="$BASE_HASH" NODEJS_BASE_IMAGE="$NODEJS_BASE_IMAGE" NODEJS_BASE_HASH="$NODEJS_BASE_HASH" \
      DOCKER_NETWORK=host DOCKER="$DOCKER" bash hack/build-images.sh \
      2> "$logf" || fail_with_log "$logf" "hack/build-images.sh ONLY=$1"
  out="$(cat "$RUN_DIR/build.out")"
  [ "${out#* }" = "$2" ] || log "note: the sources changed since this run started; built ${out#* }"
  PROJECT_ARCHIVE="${out#* }"
}

qualified() {  # image ref: the name containerd gives it (docker.io/ for Docker Hub names)
  local first="${1%%/*}"
  case "$1" in
    */*) case "$first" in *.*|*:*|localhost) echo "$1" ;; *) echo "docker.io/$1" ;; esac ;;
    *) echo "docker.io/library/$1" ;;
  esac
}

# ---- tools, phases, main -----------------------------------------------------------------

check_tools() {  # what must be built: pause / base / docker words
  local missing=() libc
  command -v python3 >/dev/null || missing+=(python3)
  command -v git >/dev/null || missing+=(git)
  case " $* " in *" pause "*)
    command -v gcc >/dev/null || missing+=(gcc)
    libc="$(gcc -print-file-name=libc.a 2>/dev/null || true)"
    [ "${libc#/}" != "$libc" ] && [ -e "$libc" ] || missing+=(libc6-dev)
  esac
  case " $* " in *" base "*) command -v debootstrap >/dev/null || missing+=(debootstrap); esac
  case " $* " in *" docker "*)
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v containerd >/dev/null || missing+=(containerd)
    command -v runc >/dev/null || missing+=(runc)
  esac
  [ "${#missing[@]}" -eq 0 ] && return 0
  die "missing Debian package(s): ${missing[*]}. Install: apt-get install ${missing[*]}   (or: bash hack/install-node-deps.sh)"
}

timed() {  # phase name, command...: run it, log how long it took
  local name="$1" t0
  shift
  t0="$(date +%s.%N)"
  "$@"
  log "$name: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')"
}

cleanup() {
  local d
  stop_child
  stop_dockerd || true
  for d in "${TMPDIRS[@]}"; do
    if [ -d "$d" ]; then remove_tmpdir "$d" || true; fi
  done
}

main() {
  local pause_tar base_tar nodejs_base_tar runtime_tar="" main_tar="" nodejs_tar="" runtime_ref="" main_ref=""
  local nodejs_ref="" todo=() image hash
  BASE_HASH="$(base_hash)"
  NODEJS_BASE_HASH="$(base_hash "$NODEJS_BASE_PACKAGES" "$NODEJS_BASE_IMAGE")"
  pause_tar="$IMAGES/pause-$(pause_hash).tar"
  base_tar="$IMAGES/debian-python-$BASE_HASH.tar"
  nodejs_base_tar="$IMAGES/debian-python-nodejs-$NODEJS_BASE_HASH.tar"
  while read -r image hash; do
    case "$image" in
      */runtime-python:*) runtime_ref="$image" runtime_tar="$IMAGES/runtime-python-$hash.tar" ;;
      */runtime-nodejs:*) nodejs_ref="$image" nodejs_tar="$IMAGES/runtime-nodejs-$hash.tar" ;;
      */lambdakube:*) main_ref="$image" main_tar="$IMAGES/lambdakube-$hash.tar" ;;
    esac
  done < <(BASE_IMAGE="$BASE_IMAGE" BASE_HASH="$BASE_HASH" NODEJS_BASE_IMAGE="$NODEJS_BASE_IMAGE" \
    NODEJS_BASE_HASH="$NODEJS_BASE_HASH" bash hack/build-images.sh --hash)
  [ -n "$runtime_tar" ] && [ -n "$main_tar" ] && [ -n "$nodejs_tar" ] \
    || die "hack/build-images.sh --hash did not name all three images"

  [ -f "$pause_tar" ] || todo+=(pause)
  if [ ! -f "$runtime_tar" ] || [ ! -f "$main_tar" ] || [ ! -f "$nodejs_tar" ]; then
    todo+=(docker)
    [ -f "$base_tar" ] && [ -f "$nodejs_base_tar" ] || todo+=(base)
  fi
  if [ "$CHECK_ONLY" = 1 ] && [ "${#todo[@]}" -gt 0 ]; then
    local missing=() tar
    for tar in "$pause_tar" "$runtime_tar" "$main_tar" "$nodejs_tar"; do
      [ -f "$tar" ] || missing+=("$(basename "$tar")")
    done
    die "not built: ${missing[*]} (in $IMAGES; an archive's name holds the hash of its" \
      "inputs, so a source edit makes a new one): run \`make images\` first (as root)"
  fi
  if [ "${#todo[@]}" -gt 0 ]; then
    check_tools "${todo[@]}"
    [ "$(id -u)" = 0 ] || die "run as root (debootstrap and dockerd need it)"
    mkdir -p "$IMAGES"
    exec 9> "$IMAGES/.lock"
    flock 9  # one builder at a time: they would share the dockerd data root
    clean_stale
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    DOCKER="$(dirname "$(command -v dockerd 2>/dev/null || echo /usr/bin/dockerd)")/docker"
    [ -x "$DOCKER" ] || DOCKER=docker  # the CLI that ships with dockerd, else PATH's
  fi

  if [ -f "$pause_tar" ]; then log "pause: cached"; else
    timed pause build_pause "$pause_tar"; prune_old "$pause_tar"; fi
  if [ -f "$runtime_tar" ] && [ -f "$main_tar" ] && [ -f "$nodejs_tar" ]; then
    if [ -f "$base_tar" ]; then log "base: cached"; else log "base: not needed (images cached)"; fi
    log "runtime: cached"; log "main: cached"; log "runtime-nodejs: cached"
  else
    if [ -f "$base_tar" ]; then log "base: cached"; else
      timed base build_base "$base_tar"; prune_old "$base_tar"; fi
    if [ -f "$nodejs_base_tar" ]; then log "nodejs base: cached"; else
      timed "nodejs base" build_base "$nodejs_base_tar" "$NODEJS_BASE_PACKAGES" "$NODEJS_BASE_IMAGE" \
        debian-python-nodejs
      prune_old "$nodejs_base_tar"; fi
    timed dockerd start_dockerd
    timed "base load" load_base "$base_tar"
    timed "nodejs base load" load_base "$nodejs_base_tar" "$NODEJS_BASE_IMAGE"
    if [ -f "$runtime_tar" ]; then log "runtime: cached"; else
      timed runtime build_project_image runtime "$runtime_tar"; runtime_tar="$PROJECT_ARCHIVE"
      prune_old "$runtime_tar"; fi
    if [ -f "$main_tar" ]; then log "main: cached"; else
      timed main build_project_image lambdakube "$main_tar"; main_tar="$PROJECT_ARCHIVE"
      prune_old "$main_tar"; fi
    if [ -f "$nodejs_tar" ]; then log "runtime-nodejs: cached"; else
      timed runtime-nodejs build_project_image runtime-nodejs "$nodejs_tar"; nodejs_tar="$PROJECT_ARCHIVE"
      prune_old "$nodejs_tar"; fi
    "$DOCKER" image prune -f >/dev/null  # the images these builds replaced
    timed "dockerd stop" stop_dockerd
  fi

  echo "$PAUSE_IMAGE $pause_tar"
  echo "$(qualified "$runtime_ref") $runtime_tar"
  echo "$(qualified "$main_ref") $main_tar"
  echo "$(qualified "$nodejs_ref") $nodejs_tar"
}

# shellcheck source=hack/check-mode.sh
source "$(dirname "${BASH_SOURCE[0]}")/check-mode.sh"
if [ "${#CHECK_ARGS[@]}" -gt 0 ]; then echo "usage: $0 [--check]" >&2; exit 2; fi

main
