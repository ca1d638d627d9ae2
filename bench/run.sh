#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# pmemfs side by side with its peers, on one machine in one run (issue 6):
#   tmpfs           a tmpfs directory (the limit for a memory-backed filesystem)
#   passthrough_ll  libfuse's example over a tmpfs directory, built here from the source
#                   Debian ships in libfuse3-dev (the usual FUSE baseline)
#   passthrough_ll -o default_permissions  the same, with the kernel's permission checks that
#                   pmemfs always has (metadata and tar rows only): with them every entry
#                   change costs the next operation in that directory a GETATTR round trip
#   null            libfuse's `null` example (a one-file FUSE filesystem whose read and write
#                   return at once), 4 KiB fio rows only: the FUSE round-trip ceiling here
#   pmemfs-shm      pmemfs, region file on /dev/shm
#   pmemfs-disk     pmemfs, region file on /var/tmp, PMEM2_FORCE_GRANULARITY=CACHE_LINE
# Workloads: fio (4 KiB randread, randwrite, write+fdatasync; 1 MiB seq write, read; 1 and
# 4 jobs), metadata (bench/metabench: create, stat, rename, unlink of N files in one
# directory and over 100), tar x / du / rm -rf of 20,000 small files, and pmemfs mount time
# and daemon memory for regions holding 10,000 and 1,000,000 files (64 GiB sparse region).
#
#   bench/run.sh            full run (medians of 3; about 12 minutes on 2 cores)
#   bench/run.sh --smoke    a one-minute version (CI): small sizes, one run
#
# Output: bench/results/<UTC date>-<mode>/table.md (also printed) and the raw fio JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=full RUNS=3 FIO_SECS=2 FIO_SIZE=256M META_N=100000 META_RUNS=1 TAR_FILES=20000 BIG_FILES=1000000 SHM_REGION=4G
if [[ ${1:-} == --smoke ]]; then
  # The smoke run's region is RAM in /dev/shm: small enough for scripts/test.sh's budget.
  MODE=smoke RUNS=1 FIO_SECS=1 FIO_SIZE=16M META_N=2000 META_RUNS=1 TAR_FILES=1000 BIG_FILES=20000 SHM_REGION=512M
fi

./scripts/install-deps.sh >/dev/null
./scripts/build.sh >/dev/null
B=$ROOT/build/bin
OUT=$ROOT/bench/results/$(date -u +%Y-%m-%dT%H%M)-$MODE
mkdir -p "$OUT/fio"
WORK=$(mktemp -d /tmp/pmemfs-bench.XXXXXX)
SHM=$(mktemp -d "${PMEMFS_TEST_DIR:-/dev/shm}/pmemfs-bench.XXXXXX")  # RAM: under scripts/test.sh's run directory
DISK_REGION=/var/tmp/pmemfs-bench-region
PIDS=()

cleanup() {
  for m in "$WORK"/mnt-*; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null; done
  grep -q " $WORK/mnt-null " /proc/mounts && fusermount3 -u "$WORK/mnt-null" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK" "$SHM" "$DISK_REGION" /var/tmp/pmemfs-bench-big
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP  # so that cleanup also runs when interrupted

wait_mounted() { for _ in $(seq 400); do mountpoint -q "$1" && return 0; sleep 0.025; done; echo "mount of $1 failed" >&2; return 1; }

# ---- targets -------------------------------------------------------------------------------
# passthrough_ll holds an O_PATH descriptor for every inode the kernel knows, so it fails
# (EMFILE) beyond the descriptor limit: raise it as far as allowed, and give passthrough_ll
# no more files than it can hold (PT_MAX; reported under the table).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PT_MAX=$(( $(ulimit -n) - 2000 ))
(( TAR_FILES > PT_MAX )) && TAR_FILES=$PT_MAX
gcc -O2 -Wall "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c" -o "$WORK/passthrough_ll" \
  $(pkg-config --cflags --libs fuse3)
gcc -O2 -Wall "/usr/share/doc/libfuse3-dev/examples/null.c" -o "$WORK/null" $(pkg-config --cflags --libs fuse3)
mkdir -p "$SHM/tmpfs" "$SHM/pt-src" "$SHM/ptdp-src" "$WORK/mnt-pt" "$WORK/mnt-ptdp" "$WORK/mnt-shm" "$WORK/mnt-disk"
"$WORK/passthrough_ll" -o source="$SHM/pt-src" -f "$WORK/mnt-pt" >"$WORK/pt.log" 2>&1 &
PIDS+=($!)
"$WORK/passthrough_ll" -o source="$SHM/ptdp-src",default_permissions -f "$WORK/mnt-ptdp" >"$WORK/ptdp.log" 2>&1 &
PIDS+=($!)
: >"$WORK/mnt-null"  # null mounts on a regular file and serves it as a 4 GiB file
"$WORK/null" -f "$WORK/mnt-null" >"$WORK/null.log" 2>&1 &
PIDS+=($!)
"$B/mkfs.pmemfs" -f --size "$SHM_REGION" "$SHM/region" >/dev/null
"$B/pmemfs" "$SHM/region" "$WORK/mnt-shm" -f >"$WORK/shm.log" 2>&1 &
PIDS+=($!)
"$B/mkfs.pmemfs" -f --size 4G "$DISK_REGION" >/dev/null
PMEM2_FORCE_GRANULARITY=CACHE_LINE "$B/pmemfs" "$DISK_REGION" "$WORK/mnt-disk" -f >"$WORK/disk.log" 2>&1 &
PIDS+=($!)
for m in pt ptdp null shm disk; do wait_mounted "$WORK/mnt-$m"; done

TARGETS=(tmpfs passthrough_ll null pmemfs-shm pmemfs-disk)
META_TARGETS=(tmpfs passthrough_ll passthrough_ll-dp pmemfs-shm pmemfs-disk)
dir_of() {
  case $1 in
    tmpfs) echo "$SHM/tmpfs" ;;
    passthrough_ll) echo "$WORK/mnt-pt" ;;
    passthrough_ll-dp) echo "$WORK/mnt-ptdp" ;;
    pmemfs-shm) echo "$WORK/mnt-shm" ;;
    pmemfs-disk) echo "$WORK/mnt-disk" ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else print a[int((NR+1)/2)]}'; }
declare -A R  # R[row|target] = figure

# ---- fio -------------------------------------------------------------------------------------
fio_row() {  # NAME RW BS EXTRA... : figures in MB/s (bandwidth) for every target
  local name=$1 rw=$2 bs=$3 jobs=$4
  shift 4
  for t in "${TARGETS[@]}"; do
    local d vals=() where
    [[ $t == null && $bs != 4k ]] && continue  # null's reads and writes cost nothing at any size
    d=$(dir_of "$t")
    where=--directory="$d"
    [[ $t == null ]] && where=--filename="$WORK/mnt-null"
    for r in $(seq "$RUNS"); do
      local json="$OUT/fio/$name-j$jobs-$t-$r.json"
      fio --name="$name" "$where" --rw="$rw" --bs="$bs" --size="$FIO_SIZE" --numjobs="$jobs" \
        --time_based --runtime="$FIO_SECS" --ramp_time=0 --ioengine=psync --group_reporting \
        --output-format=json --output="$json" "$@" >/dev/null
      vals+=("$(python3 -c "import json,sys; j=json.load(open('$json'))['jobs'][0]; print((j['read']['bw']+j['write']['bw'])/1024)")")
      [[ $t == null ]] || rm -f "$d"/"$name".*
    done
    R["fio $name, $jobs job(s) (MB/s)|$t"]=$(printf '%s\n' "${vals[@]}" | median)
  done
  ROWS+=("fio $name, $jobs job(s) (MB/s)")
}
ROWS=()
for jobs in 1 4; do
  fio_row randread-4k randread 4k $jobs
  fio_row randwrite-4k randwrite 4k $jobs
  fio_row write-4k-fdatasync write 4k $jobs --fdatasync=1
  fio_row seqwrite-1m write 1m $jobs
  fio_row seqread-1m read 1m $jobs
done

# ---- metadata --------------------------------------------------------------------------------
for layout in 1 100; do
  for t in "${META_TARGETS[@]}"; do
    d=$(dir_of "$t")/meta
    n=$META_N
    [[ $t == passthrough* ]] && (( n > PT_MAX )) && n=$PT_MAX
    declare -A M=()
    for r in $(seq "$META_RUNS"); do
      mkdir -p "$d"
      while read -r op _ _ _ _ rate _; do M[$op]+="$rate "; done < <("$B/metabench" "$d" "$n" "$layout")
      rm -rf "$d"
    done
    for op in create stat rename unlink; do
      R["$op, $META_N files in $layout dir(s) (ops/s)|$t"]=$(echo "${M[$op]}" | tr ' ' '\n' | grep . | median)
    done
  done
  for op in create stat rename unlink; do ROWS+=("$op, $META_N files in $layout dir(s) (ops/s)"); done
done

# ---- tar, du, rm -rf -------------------------------------------------------------------------
mkdir -p "$WORK/tree"
(cd "$WORK/tree" && for i in $(seq 0 $((TAR_FILES - 1))); do
  [[ $((i % 200)) == 0 ]] && mkdir -p "d$((i / 200))"
  head -c $((i % 8192 + 1)) /dev/zero >"d$((i / 200))/f$i"
done)
tar -C "$WORK/tree" -cf "$WORK/tree.tar" .
for t in "${META_TARGETS[@]}"; do
  d=$(dir_of "$t")/tar
  x=() u=() rr=()
  for r in $(seq "$RUNS"); do
    mkdir -p "$d"
    s=$(date +%s.%N); tar -C "$d" -xf "$WORK/tree.tar"; e=$(date +%s.%N); x+=("$(echo "$e - $s" | bc)")
    s=$(date +%s.%N); du -s "$d" >/dev/null; e=$(date +%s.%N); u+=("$(echo "$e - $s" | bc)")
    s=$(date +%s.%N); rm -rf "$d"; e=$(date +%s.%N); rr+=("$(echo "$e - $s" | bc)")
  done
  R["tar x $TAR_FILES files (s)|$t"]=$(printf '%s\n' "${x[@]}" | median)
  R["du -s (s)|$t"]=$(printf '%s\n' "${u[@]}" | median)
  R["rm -rf (s)|$t"]=$(printf '%s\n' "${rr[@]}" | median)
done
ROWS+=("tar x $TAR_FILES files (s)" "du -s (s)" "rm -rf (s)")

# ---- pmemfs mount time and daemon memory -------------------------------------------------------
BIG=/var/tmp/pmemfs-bench-big
mount_figures() {  # FILES
  local n=$1 m="$WORK/mnt-big" times=() rss=() pid
  rm -f "$BIG"
  "$B/mkfs.pmemfs" -f --size 64G --sparse -N $((n + n / 10 + 1000)) "$BIG" >/dev/null
  PMEM2_FORCE_GRANULARITY=CACHE_LINE "$B/populate" "$BIG" "$n"
  mkdir -p "$m"
  for r in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    PMEM2_FORCE_GRANULARITY=CACHE_LINE "$B/pmemfs" "$BIG" "$m" -f >"$WORK/big.log" 2>&1 &
    pid=$!
    wait_mounted "$m"
    ls "$m" >/dev/null
    e=$(date +%s.%N)
    times+=("$(echo "$e - $s" | bc)")
    rss+=("$(awk '/VmRSS/ {print $2}' /proc/$pid/status)")
    fusermount3 -u "$m"
    wait "$pid"
  done
  R["mount + ls of a 64 GiB region with $n files (s)|pmemfs-disk"]=$(printf '%s\n' "${times[@]}" | median)
  R["daemon RSS after mount + ls, $n files (KiB)|pmemfs-disk"]=$(printf '%s\n' "${rss[@]}" | median)
  ROWS+=("mount + ls of a 64 GiB region with $n files (s)" "daemon RSS after mount + ls, $n files (KiB)")
  rm -f "$BIG"
}
mount_figures 10000
mount_figures "$BIG_FILES"

# ---- table -------------------------------------------------------------------------------------
{
  echo "pmemfs benchmark ($MODE), $(date -u '+%F %H:%M UTC'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,"
  echo "kernel $(uname -r), fio $(fio --version), medians of $RUNS run(s) (metadata: $META_RUNS). Command: bench/run.sh${1:+ $1}"
  echo
  echo "| workload | tmpfs | passthrough_ll | passthrough_ll -o default_permissions | null | pmemfs (shm) | pmemfs (disk, CL) | shm / passthrough_ll | shm / passthrough_ll dp | shm / null | shm / tmpfs |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for row in "${ROWS[@]}"; do
    tm=${R["$row|tmpfs"]:-} pt=${R["$row|passthrough_ll"]:-} dp=${R["$row|passthrough_ll-dp"]:-} nl=${R["$row|null"]:-}
    ps=${R["$row|pmemfs-shm"]:-} pd=${R["$row|pmemfs-disk"]:-}
    ratio() {  # higher is better, except for times in seconds
      [[ -z $1 || -z $2 ]] && { echo "-"; return; }
      if [[ $row == *"(s)" ]]; then printf "%.2f" "$(echo "scale=3; $2 / $1" | bc)"; else printf "%.2f" "$(echo "scale=3; $1 / $2" | bc)"; fi
    }
    fmt() { [[ -z $1 ]] && echo "-" || printf '%.4g' "$1"; }
    echo "| $row | $(fmt "$tm") | $(fmt "$pt") | $(fmt "$dp") | $(fmt "$nl") | $(fmt "$ps") | $(fmt "$pd") | $(ratio "$ps" "$pt") | $(ratio "$ps" "$dp") | $(ratio "$ps" "$nl") | $(ratio "$ps" "$tm") |"
  done
  echo
  echo "Ratios are pmemfs (shm) over the peer, oriented so that above 1 means pmemfs is better"
  echo "(for times in seconds the peer's time over pmemfs's). 'null' is libfuse's null example:"
  echo "every read and write returns at once, so its 4 KiB rows are the FUSE round-trip ceiling and"
  echo "shm / null is the share of that ceiling pmemfs reaches. pmemfs always mounts with"
  echo "default_permissions; passthrough_ll by default does not, so the 'dp' column is the same"
  echo "FUSE conversation as pmemfs's for metadata. passthrough_ll holds a descriptor per inode"
  echo "and this machine allows $(ulimit -n): its metadata columns are for $(( META_N < PT_MAX ? META_N : PT_MAX ))"
  echo "files, and the tar tree has $TAR_FILES files for every target. Raw fio JSON: $OUT/fio/."
} | tee "$OUT/table.md"
