#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs every test (unit,
# crash and mounted integration tests) with ctest. Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
