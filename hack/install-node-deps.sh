#!/usr/bin/env bash
# Install the Debian packages that the real-node cluster and its image build need, and
# only those that are missing:
#
#   containerd runc containernetworking-plugins iptables   the node's container runtime + CNI
#   nftables                                                tests/e2e/node.py restores the ruleset
#   debootstrap docker.io gcc libc6-dev                     hack/build-node-images.sh
#
# Nothing here is on a fresh machine, and the project's own files must install what it
# needs. No service is started: while the packages install, a policy-rc.d that denies
# every start is in place (unless the machine already has one), so docker.io's postinst
# cannot bring up a system dockerd with its bridge and iptables rules. Our scripts start
# their own daemons with their own state.
#
#   bash hack/install-node-deps.sh        (as root; a no-op when everything is there)
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables nftables debootstrap docker.io gcc libc6-dev)
POLICY=/usr/sbin/policy-rc.d

log() { echo "[install-node-deps] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() {  # package
  [ "$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    installed "$p" || echo "$p"
  done
}

deny_service_starts() {  # sets POLICY_OURS when it created the file
  POLICY_OURS=
  [ -e "$POLICY" ] && return 0
  printf '#!/bin/sh\n# hack/install-node-deps.sh: start no service while installing\nexit 101\n' > "$POLICY"
  chmod 0755 "$POLICY"
  POLICY_OURS=1
}

restore_service_starts() {
  if [ -n "${POLICY_OURS:-}" ]; then rm -f "$POLICY"; fi
}

main() {
  local missing
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    log "all present: ${PACKAGES[*]}"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "run as root to install: ${missing[*]}"
  log "installing: ${missing[*]}"
  deny_service_starts
  trap restore_service_starts EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  log "installed: ${missing[*]}"
}

main "$@"
