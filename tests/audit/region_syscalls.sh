#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Region syscall audit (issue 17): a device-dax supports only open, mmap and close, so no
# pmemfs program may read, write, resize or sync a region through a descriptor; every byte
# goes through a mapping. This runs mkfs.pmemfs, a mount with a workload, setting
# immutable extents, a direct mapping through libpmemfs and through the LD_PRELOAD shim,
# pmemfs-info on the mounted and on the unmounted region, an unmount and fsck.pmemfs (-n
# and -y), each under `strace -f -y`, and fails if any
# forbidden call names the region. It runs once on a plain file region and once under the
# device-dax emulation (PMEMFS_TEST_DEVDAX=2M).
#
# Before that it proves that it can fail: the same tracing and checking applied to a
# process that preads the region (map_counters' media check) must report it.
#
#   tests/audit/region_syscalls.sh [BUILD_DIR]      (default: build; needs root, /dev/fuse, strace)
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
BIN=$BUILD/bin
PRELOAD=$BUILD/lib/libpmemfs-preload.so
# Calls that move bytes to or from a descriptor, change a file's size or space, or sync it.
FORBIDDEN=read,write,pread64,pwrite64,readv,writev,preadv,pwritev,preadv2,pwritev2,fallocate,ftruncate,truncate,fsync,fdatasync,sync_file_range,syncfs,copy_file_range,sendfile,splice,ioctl

WORK=$(mktemp -d /dev/shm/pmemfs-audit.XXXXXX)
DAEMON=""
cleanup() {
  if [[ -n $DAEMON ]] && kill -0 "$DAEMON" 2>/dev/null; then
    fusermount3 -u "$WORK/mnt" 2>/dev/null || umount -l "$WORK/mnt" 2>/dev/null || true
    kill "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
  fi
  if grep -q " $WORK/mnt " /proc/self/mountinfo 2>/dev/null; then umount -l "$WORK/mnt" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

trace() {  # trace NAME CMD... : runs CMD under strace, the log in $WORK/NAME.trace
  local name=$1
  shift
  strace -f -y -qq -e trace=$FORBIDDEN -o "$WORK/$name.trace" -- "$@"
}

# Prints the forbidden calls in trace file $1 that name region $2. Returns 1 when there is
# one.
check() {
  local file=$1 region=$2
  awk -v region="$region" -v name="$(basename "$file" .trace)" '
    index($0, "<" region ">") || index($0, "\"" region "\"") { bad++; print "  VIOLATION " name ": " substr($0, 1, 160) }
    END { exit bad ? 1 : 0 }
  ' "$file"
}

wait_mounted() {
  for _ in $(seq 1 600); do
    grep -q " $1 .* - fuse.pmemfs " /proc/self/mountinfo && return 0
    kill -0 "$DAEMON" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# ---- self-test: the audit must be able to fail ----------------------------------------------
self_test() {
  local region=$WORK/region
  truncate -s 64M "$region"
  "$BIN/mkfs.pmemfs" -f "$region" >/dev/null
  mkdir -p "$WORK/mnt"
  printf '0 8192 4096 -\n' >"$WORK/extents"
  : >"$WORK/file"
  truncate -s 4096 "$WORK/file"
  # map_counters check FILE N SEED REGION EXTENTS preads the region at offset 8192.
  trace injected "$BIN/map_counters" check "$WORK/file" 1 1 "$region" "$WORK/extents" >/dev/null 2>&1 || true
  if check "$WORK/injected.trace" "$(realpath "$region")" >/dev/null; then
    echo "audit self-test FAILED: a pread of the region was not reported" >&2
    exit 1
  fi
  echo "self-test: an injected pread of the region is reported:"
  check "$WORK/injected.trace" "$(realpath "$region")" || true
  rm -f "$region" "$WORK"/*.trace "$WORK/file" "$WORK/extents"
}

# ---- one audited run -------------------------------------------------------------------------
audit() {
  local mode=$1  # "" (a file region) or an emulated device-dax alignment
  local region=$WORK/region mnt=$WORK/mnt
  export PMEMFS_TEST_DEVDAX=$mode
  unset PMEM2_FORCE_GRANULARITY
  if [[ -n $mode ]]; then echo "== region: a file emulating a device-dax of alignment $mode"; else echo "== region: a file"; fi
  rm -f "$region" "$WORK"/*.trace
  truncate -s 128M "$region" && chmod 600 "$region"  # the device: made by ndctl on real hardware
  local real
  real=$(realpath "$region")

  # mkfs: its signature checks read the region through the mapping (libblkid probes a copy).
  trace mkfs "$BIN/mkfs.pmemfs" "$region" >/dev/null
  # The daemon, for the whole mount.
  strace -f -y -qq -e trace=$FORBIDDEN -o "$WORK/daemon.trace" -- \
    "$BIN/pmemfs" "$region" "$mnt" -f -o allow_other >"$WORK/daemon.log" 2>&1 &
  DAEMON=$!
  wait_mounted "$mnt" || { cat "$WORK/daemon.log"; echo "mount failed" >&2; exit 1; }
  (
    cd "$mnt"
    mkdir -p a/b c
    dd if=/dev/urandom of=a/data bs=64k count=40 status=none
    cp a/data a/b/copy && cmp a/data a/b/copy
    for i in $(seq 1 50); do echo "file $i" >"c/f$i"; done
    mv c/f1 c/renamed && ln c/f2 c/hard && ln -s ../a/data c/sym
    truncate -s 1M a/b/copy && fallocate -l 2M a/alloc && fallocate -p -o 0 -l 64k a/data
    setfattr -n user.note -v hello a/data && getfattr -n user.note a/data >/dev/null
    ls -lR . >/dev/null && cat c/* >/dev/null 2>&1 || true
    rm -f c/f3 c/f4 && rm -rf a/b && sync
    # A flagged file, mapped through libpmemfs and through the shim.
    dd if=/dev/urandom of=flagged bs=1M count=4 status=none
    setfattr -n user.pmemfs.immutable_extents -v 1 flagged
    getfattr --only-values -n user.pmemfs.extents flagged >/dev/null
  )
  trace client "$BIN/map_counters" store lib "$mnt/flagged" 2000 7
  trace shim env LD_PRELOAD="$PRELOAD" "$BIN/map_counters" store plain "$mnt/flagged" 2000 9
  "$BIN/map_counters" check "$mnt/flagged" 2000 9
  trace info-mounted "$BIN/pmemfs-info" "$region" >/dev/null
  fusermount3 -u "$mnt"
  wait "$DAEMON"
  DAEMON=""
  trace fsck-n "$BIN/fsck.pmemfs" -n "$region" >/dev/null
  trace fsck-y "$BIN/fsck.pmemfs" -y "$region" >/dev/null
  trace info "$BIN/pmemfs-info" --json "$region" >/dev/null

  local failed=0
  for t in mkfs daemon client shim info-mounted fsck-n fsck-y info; do
    local calls
    calls=$(grep -cv '^ > ' "$WORK/$t.trace" || true)
    if check "$WORK/$t.trace" "$real"; then
      echo "  $t: no violation ($calls calls of the traced kinds)"
    else
      failed=1
    fi
  done
  return $failed
}

self_test
status=0
audit "" || status=1
audit 2M || status=1
if ((status)); then
  echo "region syscall audit: FAILED" >&2
  exit 1
fi
echo "region syscall audit: passed"
