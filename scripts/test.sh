#!/usr/bin/env bash
# The test command of the README (and of CI): every test on every backend (flex, ndarray, wgpu).
# wgpu needs a Vulkan driver; where there is no GPU, Mesa's software one (lavapipe) is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan_icd() {
  ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1
}
if ! have_vulkan_icd; then
  echo "scripts/test.sh: no Vulkan driver found; installing Mesa's software Vulkan (mesa-vulkan-drivers)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi

cargo test --release --workspace --features ndarray,wgpu "$@"
