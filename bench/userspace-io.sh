#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Userspace read/write of a flagged file (issue 13): fio --ioengine=psync (pread/pwrite) on
# one 512 MiB file in three places, the same job each time:
#   tmpfs        a file on /dev/shm (the reference)
#   pmemfs       a flagged file on pmemfs (region file on /dev/shm), through the mount
#   pmemfs+shim  the same file with LD_PRELOAD=libpmemfs-preload.so (pread/pwrite served
#                in userspace by libpmemfs, durable on return)
# Rows: 4 KiB random read, 4 KiB random write at the region's default store granularity
# (page: each durable write is a memcpy and an msync of its pages) and with
# PMEM2_FORCE_GRANULARITY=CACHE_LINE for the daemon and fio (persistence by non-temporal
# stores or cache flushes and a fence, as on real pmem), 1 MiB sequential read and write;
# 1 and 2 jobs (processes, on the same file); median of RUNS runs of SECS seconds after a
# RAMP-second warm-up (page faults of the new mappings, the kernel's page cache) that is
# not counted.
#
#   bench/userspace-io.sh [SECS [RUNS [RAMP]]]     (default 3 3 5; builds ./build first)
#
# Output: a Markdown table on stdout (4 KiB rows in IOPS, 1 MiB rows in MB/s), ratios
# shim/tmpfs and shim/pmemfs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3} RUNS=${2:-3} RAMP=${3:-5}
SIZE=512M
./scripts/build.sh >/dev/null
B=$PWD/build/bin
SHIM=$PWD/build/lib/libpmemfs-preload.so
WORK=$(mktemp -d /tmp/pmemfs-uio.XXXXXX)
SHM=$(mktemp -d /dev/shm/pmemfs-uio.XXXXXX)
DAEMON=

cleanup() {
  mountpoint -q "$WORK/mnt" 2>/dev/null && fusermount3 -u "$WORK/mnt" 2>/dev/null
  [[ -n $DAEMON ]] && kill "$DAEMON" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mount_region [ENV...]: a fresh region on /dev/shm mounted on $WORK/mnt (daemon under ENV)
# holding the flagged file `f` of $SIZE.
mount_region() {
  if mountpoint -q "$WORK/mnt"; then
    fusermount3 -u "$WORK/mnt"
    wait "$DAEMON" 2>/dev/null || true
  fi
  rm -f "$SHM/region"
  mkdir -p "$WORK/mnt"
  "$B/mkfs.pmemfs" -f --size 1G "$SHM/region" >/dev/null
  env "$@" "$B/pmemfs" "$SHM/region" "$WORK/mnt" -f >"$WORK/daemon.log" 2>&1 &
  DAEMON=$!
  for _ in $(seq 200); do mountpoint -q "$WORK/mnt" && break; sleep 0.05; done
  mountpoint -q "$WORK/mnt" || { cat "$WORK/daemon.log" >&2; exit 1; }
  fallocate -l "$SIZE" "$WORK/mnt/f"
  setfattr -n user.pmemfs.immutable_extents -v 1 "$WORK/mnt/f"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# one TARGET RW BS JOBS [ENV...]: the median figure (IOPS for 4k, MB/s otherwise).
one() {
  local target=$1 rw=$2 bs=$3 jobs=$4 file pre=()
  shift 4
  case $target in
    tmpfs) file=$SHM/tmpfs-f ;;
    pmemfs) file=$WORK/mnt/f ;;
    shim) file=$WORK/mnt/f pre=(LD_PRELOAD="$SHIM") ;;
  esac
  local field
  case $rw in
    randread) field=$([[ $bs == 4k ]] && echo 8 || echo 7) ;;
    read) field=7 ;;
    randwrite) field=$([[ $bs == 4k ]] && echo 49 || echo 48) ;;
    write) field=48 ;;
  esac
  local vals=()
  for _ in $(seq "$RUNS"); do
    # Never into a dead mount point: its directory would take the writes.
    [[ $target == tmpfs ]] || mountpoint -q "$WORK/mnt" || { echo "pmemfs is not mounted" >&2; exit 1; }
    local v
    v=$(env "$@" "${pre[@]}" fio --name=uio --filename="$file" --size="$SIZE" --rw="$rw" --bs="$bs" \
      --numjobs="$jobs" --ioengine=psync --time_based --runtime="$SECS" --ramp_time="$RAMP" \
      --fallocate=none --group_reporting --output-format=terse --terse-version=3 | cut -d';' -f"$field")
    [[ $bs == 4k ]] || v=$(echo "$v * 1024 / 1000000" | bc -l)  # fio's KiB/s -> MB/s
    vals+=("$v")
  done
  printf '%s\n' "${vals[@]}" | median
}

row() {  # LABEL RW BS JOBS [ENV...]
  local label=$1 rw=$2 bs=$3 jobs=$4
  shift 4
  local t p s
  t=$(one tmpfs "$rw" "$bs" "$jobs" "$@")
  p=$(one pmemfs "$rw" "$bs" "$jobs" "$@")
  s=$(one shim "$rw" "$bs" "$jobs" "$@")
  printf '| %s, %s job(s) | %.0f | %.0f | %.0f | %.2f | %.1f |\n' "$label" "$jobs" "$t" "$p" "$s" \
    "$(echo "$s / $t" | bc -l)" "$(echo "$s / $p" | bc -l)"
}

fallocate -l "$SIZE" "$SHM/tmpfs-f"
echo "userspace read/write benchmark, $(date -u '+%F %H:%M') UTC, $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "fio --ioengine=psync, one $SIZE file, ${SECS}s per run after ${RAMP}s warm-up, median of $RUNS"
echo
echo "| workload | tmpfs | pmemfs | pmemfs + shim | shim / tmpfs | shim / pmemfs |"
echo "|---|---|---|---|---|---|"
mount_region
for jobs in 1 2; do
  row "4 KiB randread (IOPS)" randread 4k "$jobs"
  row "4 KiB randwrite, page granularity (IOPS)" randwrite 4k "$jobs"
  row "1 MiB seq read (MB/s)" read 1m "$jobs"
  row "1 MiB seq write (MB/s)" write 1m "$jobs"
done
mount_region PMEM2_FORCE_GRANULARITY=CACHE_LINE
for jobs in 1 2; do
  row "4 KiB randwrite, CACHE_LINE (IOPS)" randwrite 4k "$jobs" PMEM2_FORCE_GRANULARITY=CACHE_LINE
done
echo
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
