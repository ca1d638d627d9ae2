#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The README's test command: installs dependencies, builds, and runs every test (unit,
# crash, robustness, command and mounted integration tests) with ctest, then the corrupt-
# image, fsck and crash tests again under AddressSanitizer and UBSan, then the benchmark
# smoke run. Needs root and /dev/fuse.
#
# Every region and mount point the tests make goes under one directory of this run
# ($PMEMFS_TEST_DIR, read by tests/mount/mount_fixture.h and bench/run.sh), which is
# removed on every exit, also when the run is interrupted: mounts under it are detached
# and the daemons serving them stopped. Its peak size (RAM: it is on /dev/shm) is sampled
# every second and printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/teardown.sh
./scripts/install-deps.sh
./scripts/build.sh

RUN_DIR=$(mktemp -d /dev/shm/pmemfs-run.XXXXXX)
chmod 0755 "$RUN_DIR"  # tests run commands as other users, who must reach their regions
export PMEMFS_TEST_DIR=$RUN_DIR
PEAK_FILE=$(mktemp /tmp/pmemfs-run-peak.XXXXXX)
SAMPLER=
cleanup() {
  set +e
  [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null
  teardown_under "$RUN_DIR"  # daemons and mounts of this run, then the files
  rm -rf "$RUN_DIR"
  [[ -s $PEAK_FILE ]] && echo "peak /dev/shm use of this run: $(( $(cat "$PEAK_FILE") / 1024 )) MiB"
  rm -f "$PEAK_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
(
  peak=0
  while sleep 1; do
    kb=$(du -skx "$RUN_DIR" 2>/dev/null | cut -f1)
    if [[ -n $kb ]] && (( kb > peak )); then peak=$kb; echo "$peak" >"$PEAK_FILE"; fi
  done
) &
SAMPLER=$!

ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure --timeout 900 "$@"

# Device-dax (issue 17), without the hardware: the mounted, immutable-extents and
# direct-mapping suites (fio's mmap and libpmem engines under the shim included) again on
# regions that follow a 2 MiB device-dax's rules (about 2 minutes here), then the strace audit
# that no program touches a region other than through a mapping (about 10 s).
PMEMFS_TEST_DEVDAX=2M ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure --timeout 900 -L mount "$@"
./tests/audit/region_syscalls.sh "${BUILD_DIR:-build}"

# Sanitizers: the fs-layer tests that feed damaged and crashed images to fsck and mount.
# Leak checking is off: the crash tests drop mounted filesystems on purpose (a crash has no
# clean unmount).
ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$ASAN_DIR" -DPMEMFS_ASAN=ON -DPMEMFS_WERROR=ON >/dev/null
cmake --build "$ASAN_DIR" -j"$(nproc)" --target corrupt_tests fsck_tests crash_tests
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir "$ASAN_DIR" --output-on-failure --timeout 900 -L 'corrupt|crash'

# ThreadSanitizer over the concurrency tests (issue 12): threads creating, writing, renaming
# and removing in private and shared directories of one filesystem (the lock order documented
# in src/fs/filesystem.h), and concurrent journal commits forming groups. Any report fails.
TSAN_DIR=${TSAN_BUILD_DIR:-build-tsan}
cmake -S . -B "$TSAN_DIR" -DPMEMFS_TSAN=ON -DPMEMFS_WERROR=ON >/dev/null
cmake --build "$TSAN_DIR" -j"$(nproc)" --target fs_unit_tests lower_unit_tests
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir "$TSAN_DIR" --output-on-failure --timeout 900 -R 'Concurren'

# The one-minute benchmark smoke run (issue 6): figures are reported, never asserted.
if [[ ${PMEMFS_SKIP_BENCH_SMOKE:-0} != 1 ]]; then
  ./bench/run.sh --smoke
fi

# Every tracked source file carries the license's SPDX identifier (LICENSE: BSD-3-Clause);
# scripts/spdx.sh without --check adds the missing ones.
./scripts/spdx.sh --check
