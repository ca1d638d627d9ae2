#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The README's demo command: installs dependencies, builds, formats a 1 GiB region file,
# mounts it on /mnt/pmemfs-demo and uses it. Leaves it mounted; unmount with
#   fusermount3 -u /mnt/pmemfs-demo
set -euo pipefail
cd "$(dirname "$0")/.."
REGION=${REGION:-/dev/shm/pmemfs-demo.region}
MNT=${MNT:-/mnt/pmemfs-demo}
./scripts/install-deps.sh
./scripts/build.sh
BIN=${BUILD_DIR:-build}/bin
set -x
mountpoint -q "$MNT" && fusermount3 -u "$MNT"
"$BIN/mkfs.pmemfs" -f --size 1G "$REGION"
mkdir -p "$MNT"
"$BIN/pmemfs" "$REGION" "$MNT"
mount | grep "$MNT"
cp -r /usr/share/doc/fuse3 "$MNT/docs"
dd if=/dev/urandom of="$MNT/data.bin" bs=1M count=8 status=none
setfattr -n user.pmemfs.immutable_extents -v 1 "$MNT/data.bin"
getfattr -n user.pmemfs.immutable_extents "$MNT/data.bin"
getfattr --only-values -n user.pmemfs.extents "$MNT/data.bin"
truncate -s 0 "$MNT/data.bin" || echo "truncate refused, as it must be: the file has immutable extents"
ls -la "$MNT" && df -h "$MNT"
