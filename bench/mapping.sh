#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Persistent random updates per second through the five paths of bench/mapping.cc, on the
# same region in one run: with the region on /dev/shm, and on a disk file with
# PMEM2_FORCE_GRANULARITY=CACHE_LINE (daemon and clients) to emulate real pmem.
#
#   bench/mapping.sh [SECONDS_PER_CASE]        (default 3; builds into ./build first)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
./scripts/build.sh >/dev/null
B=$PWD/build/bin
SHIM=$PWD/build/lib/libpmemfs-preload.so
WORK=$(mktemp -d /tmp/pmemfs-mapping.XXXXXX)
trap 'fusermount3 -u "$WORK/mnt" 2>/dev/null || true; rm -rf "$WORK" /var/tmp/pmemfs-mapping-region' EXIT

run_case() {  # LABEL REGION_PATH [env...]
  local label=$1 region=$2
  shift 2
  mkdir -p "$WORK/mnt"
  "$B/mkfs.pmemfs" -f --size 1G "$region" >/dev/null
  env "$@" "$B/pmemfs" "$region" "$WORK/mnt" -f >"$WORK/daemon.log" 2>&1 &
  for _ in $(seq 100); do mountpoint -q "$WORK/mnt" && break; sleep 0.05; done
  truncate -s 64M "$WORK/mnt/flagged" "$WORK/mnt/plain"
  setfattr -n user.pmemfs.immutable_extents -v 1 "$WORK/mnt/flagged"
  dd if=/dev/zero of="$WORK/mnt/plain" bs=1M count=64 conv=notrunc status=none
  getfattr --only-values -n user.pmemfs.extents "$WORK/mnt/flagged" >"$WORK/extents" 2>/dev/null
  echo "### $label"
  echo
  echo "| update | (a) libpmem2 on region | (b) libpmemfs | (c) shim mmap+msync | (d) FUSE mmap+msync | (e) pwrite | b/a | c/a | b/d |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for size in 8 64; do
    a=$(env "$@" "$B/mapping" a $size "$SECS" "$WORK/mnt/flagged" "$region" "$WORK/extents" | cut -d' ' -f3)
    b=$(env "$@" "$B/mapping" b $size "$SECS" "$WORK/mnt/flagged" | cut -d' ' -f3)
    c=$(env "$@" LD_PRELOAD="$SHIM" "$B/mapping" c $size "$SECS" "$WORK/mnt/flagged" | cut -d' ' -f3)
    d=$(env "$@" "$B/mapping" d $size "$SECS" "$WORK/mnt/plain" | cut -d' ' -f3)
    e=$(env "$@" "$B/mapping" e $size "$SECS" "$WORK/mnt/plain" | cut -d' ' -f3)
    printf '| %s B | %s/s | %s/s | %s/s | %s/s | %s/s | %.2f | %.2f | %.0f |\n' "$size" "$a" "$b" "$c" "$d" "$e" \
      "$(echo "$b / $a" | bc -l)" "$(echo "$c / $a" | bc -l)" "$(echo "$b / $d" | bc -l)"
  done
  echo
  fusermount3 -u "$WORK/mnt"
  wait
}

echo "pmemfs mapping benchmark, $(date -u +%F), $(nproc) cores, $(uname -r), ${SECS}s per case"
echo
run_case "region on /dev/shm (tmpfs; libpmem2 granularity: page, persist = msync)" /dev/shm/pmemfs-mapping-region
rm -f /dev/shm/pmemfs-mapping-region
run_case "region on /var/tmp with PMEM2_FORCE_GRANULARITY=CACHE_LINE (emulated pmem)" /var/tmp/pmemfs-mapping-region \
  PMEM2_FORCE_GRANULARITY=CACHE_LINE
