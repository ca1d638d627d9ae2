#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Packaging CI (issue 16): builds the Debian packages from this tree with Debian's tooling
# (dpkg-buildpackage -us -uc -b), runs lintian (fails on errors), checks `cmake --install
# --prefix` of the same build into a prefix the dynamic linker does not know (pkg-config,
# a program built with it, the shim loading without ldconfig), installs the packages with
# `apt-get install ./*.deb`, runs a smoke test against the installed commands, and purges
# them again. Run as root on Debian 12, from a clone:   bash packaging/ci-package.sh
#
# The smoke test: every command's --help and --version (the package's version), man -w for
# every page; mkfs.pmemfs -L and pmemfs-info (text and --json); `mount -t fuse.pmemfs`;
# setting immutable extents with setfattr; a direct mapping through the installed library
# (a program built with `pkg-config --cflags --libs libpmemfs`) and through the installed
# LD_PRELOAD shim (a plain mmap program, which fails with ENODEV without it); umount;
# fsck.pmemfs and `fsck -t fuse.pmemfs` (which must really run the checker); an /etc/fstab
# line mounted with `mount MOUNTPOINT` and checked with `fsck -A` in a private mount
# namespace, where a temporary fstab is bind-mounted over /etc/fstab.
#
# Everything it makes goes under one build directory (/tmp) and one region directory
# (/dev/shm), removed with any mount and daemon on every exit; the packages are purged on
# every exit once installed. It refuses to run when pmemfs packages are installed already
# (it would purge them).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
source scripts/teardown.sh
[[ $(id -u) == 0 ]] || { echo "ci-package.sh: needs root (apt-get, mount)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
PKGS=(pmemfs libpmemfs0 libpmemfs-dev)
APT=(apt-get -y -qq -o DPkg::Lock::Timeout=600)

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${PKGS[@]}"; do
  if installed "$p"; then
    echo "ci-package.sh: $p is installed already; this script would purge it. Remove it first." >&2
    exit 1
  fi
done

BUILD=$(mktemp -d /tmp/pmemfs-pkg.XXXXXX)
REG=$(mktemp -d /dev/shm/pmemfs-pkg.XXXXXX)
MNT=$REG/mnt
PURGE=0
step() { echo; echo "=== $*"; }
cleanup() {
  local rc=$?
  set +e
  teardown_under "$REG"  # daemons serving regions of this run, their mounts, then the files
  rm -rf "$REG" "$BUILD"
  if ((PURGE)); then "${APT[@]}" purge "${PKGS[@]}" >/dev/null 2>&1; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- build ---------------------------------------------------------------------------------
step "build dependencies"
"${APT[@]}" update
"${APT[@]}" install --no-install-recommends dpkg-dev debhelper lintian fakeroot \
  fuse3 attr gcc libc6-dev pkg-config man-db util-linux >/dev/null
"${APT[@]}" build-dep --no-install-recommends "$SRC" >/dev/null

step "dpkg-buildpackage -us -uc -b (in $BUILD/src)"
mkdir "$BUILD/src"
# The tree as git sees it (tracked and new files, not ignored ones such as build/).
git -C "$SRC" ls-files -z --cached --others --exclude-standard |
  (cd "$SRC" && tar --null -T - -cf -) | tar -xf - -C "$BUILD/src"
(cd "$BUILD/src" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b >"$BUILD/build.log" 2>&1) ||
  { tail -50 "$BUILD/build.log"; echo "dpkg-buildpackage failed" >&2; exit 1; }
ls -l "$BUILD"/*.deb

step "lintian"
lintian --fail-on error --tag-display-limit 0 "$BUILD"/pmemfs_*.changes
VERSION=$(dpkg-parsechangelog -l "$BUILD/src/debian/changelog" -S Version)
grep -q "project(pmemfs VERSION $VERSION " "$SRC/CMakeLists.txt" ||
  { echo "debian/changelog's version $VERSION is not CMakeLists.txt's project version" >&2; exit 1; }

# ---- cmake --install into a prefix the dynamic linker does not know ------------------------
# Before the packages are installed, so nothing can come from the system's library paths.
step "cmake --install --prefix (the package build's tree)"
PREFIX=$BUILD/prefix
cmake --install "$BUILD/src/obj-$(dpkg-architecture -qDEB_HOST_GNU_TYPE)" --prefix "$PREFIX" >/dev/null
PC_DIR=$(dirname "$(find "$PREFIX" -name libpmemfs.pc)")
grep -qx "prefix=$PREFIX" "$PC_DIR/libpmemfs.pc"
LIBDIR=$(PKG_CONFIG_PATH=$PC_DIR pkg-config --variable=libdir libpmemfs)
gcc -Wall -Werror -o "$BUILD/map_lib_prefix" "$SRC/packaging/smoke/map_lib.c" \
  $(PKG_CONFIG_PATH=$PC_DIR pkg-config --cflags --libs libpmemfs) -Wl,-rpath,"$LIBDIR"
ldd "$BUILD/map_lib_prefix" | grep -q "libpmemfs.so.0 => $LIBDIR/libpmemfs.so.0"
# The shim finds libpmemfs.so.0 beside it (RUNPATH $ORIGIN), without ldconfig.
LD_PRELOAD=$LIBDIR/libpmemfs-preload.so /bin/true
echo "prefix install: pkg-config, a program built with it, and the shim work from $LIBDIR"

# ---- install -------------------------------------------------------------------------------
step "apt-get install ./*.deb"
PURGE=1
"${APT[@]}" install "$BUILD/pmemfs_${VERSION}_"*.deb "$BUILD/libpmemfs0_${VERSION}_"*.deb \
  "$BUILD/libpmemfs-dev_${VERSION}_"*.deb
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
SHIM=/usr/lib/$MA/libpmemfs-preload.so

step "commands: --help, --version, man pages"
for c in pmemfs mkfs.pmemfs fsck.pmemfs fsck.fuse.pmemfs pmemfs-info; do
  [[ $(command -v "$c") == /usr/sbin/$c ]] || { echo "$c is not /usr/sbin/$c" >&2; exit 1; }
  "$c" --help | grep -q "usage:" || { echo "$c --help" >&2; exit 1; }
  v=$("$c" --version)
  [[ $v == *" $VERSION" ]] || { echo "$c --version says '$v', not $VERSION" >&2; exit 1; }
  echo "$v"
done
for page in pmemfs mkfs.pmemfs fsck.pmemfs fsck.fuse.pmemfs pmemfs-info libpmemfs libpmemfs-preload; do
  man -w "$page"
done
[[ -f $SHIM && -e /usr/lib/$MA/libpmemfs.so.0 && -e /usr/include/libpmemfs.h ]]
ls -l /lib/udev/rules.d/60-pmemfs.rules /lib/systemd/system/pmemfs-fsck@.service

step "build against the installed libpmemfs with pkg-config"
gcc -Wall -Werror -o "$BUILD/map_lib" "$SRC/packaging/smoke/map_lib.c" $(pkg-config --cflags --libs libpmemfs)
gcc -Wall -Werror -o "$BUILD/map_plain" "$SRC/packaging/smoke/map_plain.c"
ldd "$BUILD/map_lib" | grep -E "libpmemfs.so.0 => (/usr)?/lib/$MA/libpmemfs.so.0"

# ---- smoke test ----------------------------------------------------------------------------
step "mkfs.pmemfs -L, pmemfs-info"
mkdir "$MNT"
mkfs.pmemfs -L ci-label --size 64M "$REG/region"
pmemfs-info "$REG/region" | tee "$BUILD/info.txt"
grep -q "^label: *ci-label$" "$BUILD/info.txt"
grep -q "^journal: .*clean$" "$BUILD/info.txt"
pmemfs-info --json "$REG/region" | grep -q '"label": "ci-label"'

step "mount -t fuse.pmemfs"
mount -t fuse.pmemfs "$REG/region" "$MNT" -o allow_other
grep " $MNT " /proc/self/mountinfo | grep -q " - fuse.pmemfs $REG/region "
dd if=/dev/urandom of="$MNT/table" bs=1M count=4 status=none
echo hello >"$MNT/hello"
setfattr -n user.pmemfs.immutable_extents -v 1 "$MNT/table"
[[ $(getfattr --only-values -n user.pmemfs.immutable_extents "$MNT/table") == 4K ]]

step "direct mapping: the installed library, then the installed shim"
"$BUILD/map_lib" "$MNT/table" "stored-by-libpmemfs"
[[ $(dd if="$MNT/table" bs=1 skip=4096 count=19 status=none) == stored-by-libpmemfs ]]
"$BUILD/map_lib_prefix" "$MNT/table" "stored-by-prefix-lib"   # the cmake --install copy
[[ $(dd if="$MNT/table" bs=1 skip=4096 count=20 status=none) == stored-by-prefix-lib ]]
set +e
"$BUILD/map_plain" "$MNT/table" "stored-without-shim"
rc=$?
set -e
[[ $rc == 3 ]] || { echo "a shared mapping without the shim should fail with ENODEV (exit 3), got $rc" >&2; exit 1; }
LD_PRELOAD=$SHIM "$BUILD/map_plain" "$MNT/table" "stored-through-shim"
[[ $(dd if="$MNT/table" bs=1 skip=8192 count=19 status=none) == stored-through-shim ]]
echo "both mappings stored bytes that read() through the mount sees"

step "umount, fsck"
umount "$MNT"
for _ in $(seq 100); do grep -q " $MNT " /proc/self/mountinfo || break; sleep 0.1; done
fsck.pmemfs -n "$REG/region"
fsck -t fuse.pmemfs "$REG/region" | tee "$BUILD/fsck.txt"
grep -q "0 problems found" "$BUILD/fsck.txt"
# fsck(8) must really run the checker: a region without pmemfs is an operational error.
truncate -s 64M "$REG/empty"
set +e
fsck -t fuse.pmemfs "$REG/empty"
rc=$?
set -e
[[ $rc == 8 ]] || { echo "fsck -t fuse.pmemfs of an empty region exited $rc, not 8" >&2; exit 1; }

step "/etc/fstab in a private mount namespace"
# The README's line. fsck(8) -A skips a region that is not a block device when the line
# says nofail ("skipping nonexistent device"), so the boot-time check is shown with a
# second line without nofail.
echo "$REG/region $MNT fuse.pmemfs defaults,nofail 0 2" >"$REG/fstab"
echo "$REG/region $MNT fuse.pmemfs defaults 0 2" >"$REG/fstab-check"
cat "$REG/fstab"
unshare --mount --propagation private bash -euo pipefail -c '
  REG=$1 MNT=$2
  trap "umount -l $MNT 2>/dev/null || true" EXIT
  mount --bind "$REG/fstab-check" /etc/fstab
  fsck -A -R -t fuse.pmemfs -a | tee "$REG/fsck-A.txt"   # boot-time check: fsck.fuse.pmemfs -a
  grep -q "^$REG/region: 0 problems found" "$REG/fsck-A.txt"
  umount /etc/fstab
  mount --bind "$REG/fstab" /etc/fstab
  mount "$MNT"                             # options, type and region from fstab
  grep " $MNT " /proc/self/mountinfo | grep -q " - fuse.pmemfs $REG/region "
  [[ $(cat "$MNT/hello") == hello ]]
  umount "$MNT"
  mount -a -t fuse.pmemfs                  # what boot does for every fstab line
  [[ $(cat "$MNT/hello") == hello ]]
  umount "$MNT"
  for _ in $(seq 100); do grep -q " $MNT " /proc/self/mountinfo || break; sleep 0.1; done
  echo "fsck -A, an fstab mount and mount -a worked"
' _ "$REG" "$MNT"
for _ in $(seq 100); do pgrep -f "pmemfs $REG/region" >/dev/null || break; sleep 0.1; done
fsck.pmemfs -n "$REG/region"

step "systemd: the mount unit an fstab line for a device-dax gives"
# No device-dax and no systemd as PID 1 here: the generator's output is checked instead.
mkdir "$REG/gen"
echo "/dev/dax0.0 /mnt/pmem fuse.pmemfs defaults,nofail,x-systemd.requires=pmemfs-fsck@dev-dax0.0.service 0 0" >"$REG/fstab-dax"
SYSTEMD_FSTAB=$REG/fstab-dax /lib/systemd/system-generators/systemd-fstab-generator "$REG/gen" "$REG/gen" "$REG/gen"
cat "$REG/gen/mnt-pmem.mount"
grep -q "^Requires=pmemfs-fsck@dev-dax0.0.service" "$REG/gen/mnt-pmem.mount"
if grep -q "systemd-fsck@" "$REG/gen/mnt-pmem.mount"; then
  echo "pass number 0 must keep systemd-fsck (block devices only) away from a device-dax" >&2
  exit 1
fi
systemd-analyze verify --man=no pmemfs-fsck@dev-dax0.0.service

# ---- remove --------------------------------------------------------------------------------
step "apt-get purge"
"${APT[@]}" purge "${PKGS[@]}"
PURGE=0
for f in /usr/sbin/pmemfs /usr/sbin/fsck.fuse.pmemfs "$SHIM" /usr/include/libpmemfs.h; do
  [[ ! -e $f ]] || { echo "$f is still there after purge" >&2; exit 1; }
done
echo
echo "packaging CI: passed"
