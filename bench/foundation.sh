#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Foundation figures: files created per second (100,000 in one directory), 1 MiB
# sequential write and read MB/s, and mount time of a region holding 100,000 files.
#   bench/foundation.sh [BUILD_DIR]
# Region on /dev/shm by default (REGION_DIR=... to change); set
# PMEM2_FORCE_GRANULARITY=CACHE_LINE to emulate pmem flushing on a disk-backed file.
set -euo pipefail
BIN=$(realpath "${1:-build}")/bin
REGION_DIR=${REGION_DIR:-/dev/shm}
R=$REGION_DIR/pmemfs-bench.$$
M=$(mktemp -d /tmp/pmemfs-bench.XXXX)
LOG=${LOG:-/tmp/pmemfs-bench.log}
cleanup() { mountpoint -q "$M" && fusermount3 -u "$M"; rm -f "$R"; rmdir "$M"; }
trap cleanup EXIT
# The daemon in the foreground, logging to $LOG; returns once the mount answers.
mount_fs() {
  "$BIN/pmemfs" "$R" "$M" -f -o log_level=warn 2>>"$LOG" &
  for _ in $(seq 100); do mountpoint -q "$M" && return 0; sleep 0.05; done
  echo "mount failed; see $LOG" >&2; return 1
}
"$BIN/mkfs.pmemfs" -f --size 8G --sparse -N 200000 "$R" >/dev/null
mount_fs
mkdir "$M/many" "$M/kept"
echo "## metadata, 100,000 empty files in one directory"
"$BIN/metabench" "$M/many" 100000
echo "## 1 MiB sequential I/O, 2 GiB file (first write allocates; rewrite is in place)"
for pass in write rewrite; do
  s=$(date +%s.%N); dd if=/dev/zero of="$M/seq" bs=1M count=2048 conv=notrunc status=none; e=$(date +%s.%N)
  echo "$pass: $(echo "2048 / ($e - $s)" | bc -l | xargs printf '%.0f') MB/s"
done
echo 3 > /proc/sys/vm/drop_caches
s=$(date +%s.%N); dd if="$M/seq" of=/dev/null bs=1M status=none; e=$(date +%s.%N)
echo "read: $(echo "2048 / ($e - $s)" | bc -l | xargs printf '%.0f') MB/s"
rm "$M/seq"
"$BIN/metabench" "$M/kept" 100000 1 create >/dev/null  # kept for the mount figure
fusermount3 -u "$M"
echo "## mount of a region holding 100,000 files (until the mount answers stat)"
sleep 0.5
s=$(date +%s.%N); mount_fs; stat "$M" >/dev/null; e=$(date +%s.%N)
echo "mount: $(echo "($e - $s) * 1000" | bc -l | xargs printf '%.0f') ms"
s=$(date +%s.%N); ls -f "$M/kept" | wc -l >/dev/null; e=$(date +%s.%N)
echo "first ls of the 100,000-entry directory: $(echo "($e - $s) * 1000" | bc -l | xargs printf '%.0f') ms"
