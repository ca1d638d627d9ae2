#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs every test (unit,
# crash, robustness and mounted integration tests) with ctest, then the corrupt-image and
# crash tests again under AddressSanitizer and UBSan. Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
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
cmake --build "$ASAN_DIR" -j"$(nproc)" --target corrupt_tests crash_tests
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir "$ASAN_DIR" --output-on-failure --timeout 900 -L 'corrupt|crash'

# The one-minute benchmark smoke run (issue 6): figures are reported, never asserted.
if [[ ${PMEMFS_SKIP_BENCH_SMOKE:-0} != 1 ]]; then
  ./bench/run.sh --smoke
fi
