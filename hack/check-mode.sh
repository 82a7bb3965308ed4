# Sourced by the hack/build-*.sh scripts: sets CHECK_ONLY=1 for `--check` (shifted off
# the arguments) or LAMBDAKUBE_NO_BUILD=1, so each script answers "built or not" and
# never builds. Written once so the three scripts read the flag the same way.
# shellcheck shell=bash
CHECK_ONLY=0
[ "${LAMBDAKUBE_NO_BUILD:-0}" = 0 ] || CHECK_ONLY=1
if [ "${1:-}" = --check ]; then
  CHECK_ONLY=1
  shift
fi
CHECK_ARGS=("$@")
