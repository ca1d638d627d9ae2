// Superblock: layout computation, mkfs, and reading with fallback to the backup copy.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "extent/format.h"
#include "pmem/region.h"

namespace pmemfs::extent {

struct MkfsOptions {
  uint64_t inode_count = 0;    // 0: one inode per 16 KiB of region
  uint64_t journal_size = 0;   // 0: region/256 clamped to [256 KiB, 16 MiB]
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  std::string label;
};

// Fills the layout fields of a superblock for a region of `region_size` bytes.
// EINVAL when the region is too small for the requested metadata.
Result<format::Superblock> ComputeLayout(uint64_t region_size, const MkfsOptions& opts);

// Writes a new empty filesystem: zeroes the journal, state and bitmaps, creates the root
// directory, writes the backup superblock, then the primary last.
Status Format(pmem::Region& region, const MkfsOptions& opts);

void SealSuperblock(format::Superblock& sb);  // sets the crc
// Checks magic, crc, version and that every area lies inside a region of `region_size`.
// EUCLEAN / EBADMSG / EPROTONOSUPPORT name what is wrong.
Status ValidateSuperblock(const format::Superblock& sb, uint64_t region_size);

struct LoadedSuperblock {
  format::Superblock sb;
  bool from_backup = false;
};
// Reads the primary superblock; when it is damaged, searches for a valid backup at the
// last block of the region. ENODATA when neither holds a pmemfs.
Result<LoadedSuperblock> ReadSuperblock(const pmem::Region& region);

std::string UuidString(const uint8_t uuid[16]);

}  // namespace pmemfs::extent
