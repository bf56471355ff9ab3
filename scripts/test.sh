#!/usr/bin/env bash
# The test command of the README (and of CI): every test on every backend (flex, ndarray, wgpu).
# wgpu needs a Vulkan driver; where there is no GPU, Mesa's software one (lavapipe) is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan_icd() {
  local f
  for f in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json; do
    [ -e "$f" ] && return 0
  done
  return 1
}
if ! have_vulkan_icd; then
  echo "scripts/test.sh: no Vulkan driver found; installing Mesa's software Vulkan (mesa-vulkan-drivers)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi

# Mesa's software Vulkan complains on every device open when this is unset (harmless, but noisy).
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)"
  export XDG_RUNTIME_DIR
fi

# The backend-agreement tests fail (rather than skip) when one of these is not compiled in.
export ZOO_REQUIRE_BACKENDS="${ZOO_REQUIRE_BACKENDS:-flex,ndarray,wgpu}"
# Every test target; the examples are compiled (type-checked) inside the `all` test binary
# (tests/examples.rs) rather than linked one binary each. Then the doc tests, against the same
# release libraries (no second build).
cargo test --release --workspace --features ndarray,wgpu --tests "$@"
cargo test --release --workspace --features ndarray,wgpu --doc "$@"
