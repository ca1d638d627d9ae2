#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The effect of the mount-time prefault (issue 12): the first O_DIRECT overwrite and read of a
# 512 MiB file after a fresh mount, with the default background prefault and with
# -o noprefault, and a second pass (the mapping warm either way) as the reference. Medians
# of RUNS (default 5).
#
#   bench/prefault.sh [RUNS]        uses build/bin; region: 1 GiB, allocated, on /dev/shm
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
B=$PWD/build/bin
D=$(mktemp -d "${PMEMFS_TEST_DIR:-/dev/shm}/pmemfs-prefault.XXXXXX")
M=$D/mnt
mkdir -p "$M"
cleanup() { mountpoint -q "$M" && fusermount3 -u "$M"; sleep 0.3; rm -rf "$D"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
"$B/mkfs.pmemfs" -f --size 1G "$D/region" >/dev/null
PID=
mnt() {
  "$B/pmemfs" "$D/region" "$M" -f "$@" 2>>"$D/log" &
  PID=$!
  for _ in $(seq 200); do mountpoint -q "$M" && return 0; sleep 0.05; done
  echo "mount failed:" >&2; tail -3 "$D/log" >&2; return 1
}
umnt() { fusermount3 -u "$M"; wait "$PID"; }  # the daemon gone: its region lock too
pass_mibs() {  # read|write: MiB/s of one O_DIRECT pass over the whole file
  local s e
  s=$(date +%s.%N)
  if [[ $1 == read ]]; then dd if="$M/f" of=/dev/null bs=1M iflag=direct status=none
  else dd if=/dev/zero of="$M/f" bs=1M count=512 oflag=direct conv=notrunc status=none; fi
  e=$(date +%s.%N)
  echo "512 / ($e - $s)" | bc
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mnt
dd if=/dev/urandom of="$M/f" bs=1M count=512 status=none
umnt
declare -A F  # F[mode op pass] = figures
for _ in $(seq "$RUNS"); do
  for op in write read; do
    for mode in prefault noprefault; do
      if [[ $mode == noprefault ]]; then mnt -o noprefault; else mnt; fi
      sleep 2  # the prefault thread's time (logged below), as a service would have after boot
      F[$mode $op 1]+="$(pass_mibs $op) "
      F[$mode $op 2]+="$(pass_mibs $op) "
      umnt
    done
  done
done
m() { tr ' ' '\n' <<<"${F[$1]}" | grep . | median; }
echo "| mount | first overwrite after mount | second overwrite | first read after mount | second read |"
echo "|---|---|---|---|---|"
for mode in prefault noprefault; do
  echo "| $mode | $(m "$mode write 1") MiB/s | $(m "$mode write 2") MiB/s | $(m "$mode read 1") MiB/s | $(m "$mode read 2") MiB/s |"
done
grep -o 'prefaulted.*' "$D/log" | tail -1 || true
