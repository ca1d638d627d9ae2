#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs the Debian 12 packages pmemfs needs to build, test and benchmark. Run as root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libfuse3-dev fuse3 libpmem2-dev libspdlog-dev libblkid-dev libxxhash-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      attr fio tar util-linux coreutils bc strace)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
