// SPDX-License-Identifier: BSD-3-Clause
// Region files and the checks the commands make on a region before they touch it.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "common/result.h"
#include "extent/superblock.h"
#include "pmem/region.h"

namespace pmemfs::cli {

// Creates `path` (mode 0600) or extends the existing regular file to `size` bytes. Unless
// `sparse`, the whole file's space is allocated, so that a full backing filesystem fails
// here and not later as SIGBUS on a store in the daemon. On failure the file is as it was:
// a file created here is removed; an extended file gets back its size and its holes.
// REQUIRES: an existing file is not larger than `size`.
Status CreateOrExtendRegionFile(const std::string& path, uint64_t size, bool sparse);

// Why `path` cannot be a region, in words that name the fix, or "" when it can be one: it
// must exist and be a regular file or a device-dax (/dev/daxX.Y). Another character device
// (/dev/null, a tty) or a block device is named as such rather than left to libpmem2's
// "Invalid argument". `for_mkfs`: a missing file is fine (mkfs --size creates it).
std::string RegionPathProblem(const std::string& path, bool for_mkfs = false);

// True when the character device `rdev` belongs to the kernel's dax subsystem (what
// libpmem2 checks too: /sys/dev/char/MAJ:MIN/subsystem names "dax").
bool IsDevdax(dev_t rdev);

// The warning to give when users other than the region's owner and group can read or
// write it (whoever can open the region can read and change every file), or "".
std::string PermissionWarning(const std::string& path, const struct stat& st);

// A signature of pmemfs, famfs or (BlkidSignature) another filesystem or partition table,
// read through the mapping (skipping what `readable` says is a hole); "" when there is none.
std::string FindSignature(const pmem::Region& region, const extent::HoleProbe& readable);

// What libblkid recognises in the region, probing a sparse in-memory copy of its first and
// last MiB: libblkid reads with read(), which a region never sees (a device-dax has none).
std::string BlkidSignature(const pmem::Region& region, const extent::HoleProbe& readable);

// For a regular file: a probe that answers false for blocks in holes (lseek SEEK_DATA on
// `fd`, which reads nothing); for anything else, an empty probe.
extent::HoleProbe HoleProbeFor(int fd, const struct stat& st);

}  // namespace pmemfs::cli
