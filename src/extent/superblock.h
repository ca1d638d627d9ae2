// SPDX-License-Identifier: BSD-3-Clause
// Superblock: layout computation, mkfs, reading with fallback to the copies, and the
// signatures that say "this region holds (or held) a pmemfs".
//
// Three copies of the superblock, all written by mkfs and never changed while mounted:
//   primary   block 0
//   copy      the second half of block 1 (kSuperblockCopyOff), next to the state block:
//             a fixed spot, so it is found even after the region file has grown and the
//             backup is no longer in the last block of the device
//   backup    the last block of the formatted size (sb.backup_off), away from the start,
//             so it survives damage to the first blocks
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "extent/format.h"
#include "pmem/region.h"

namespace pmemfs::extent {

// The fixed copy of the superblock: block 1 holds the 64-byte state block at its start
// (journaled) and this copy at its middle; no transaction ever writes here.
inline constexpr uint64_t kSuperblockCopyOff = format::kBlockSize + 2048;

// The journal must hold the largest transaction the filesystem builds. The bounded ones
// (src/fs): a 1 MiB FUSE write into free space of one-block runs (per run a bitmap record,
// an extent slot, merge rewrites; new extent blocks; the inode; a rewritten xattr block when
// the write drops security.capability): 18.9 KB measured, under 50 KiB at worst; a truncate
// batch (TruncateBlocksLocked: at most 256 extents, about 17 KiB plus capacity/4 of bitmap);
// rename (five inodes, two entries, a directory block: about 6 KiB); setxattr (4 KiB).
// tests/robust/journal_minimum_test.cc runs them at this size on fragmented space (and
// fails below 19 KiB). Unbounded operations (fallocate or punching huge ranges of
// fragmented space) answer EFBIG when they do not fit.
inline constexpr uint64_t kMinJournalSize = 256ull << 10;
inline constexpr uint64_t kMaxJournalSize = 1ull << 30;  // the log's payload length is 32-bit
// Fewer inodes make a filesystem in which almost nothing can be created.
inline constexpr uint64_t kMinInodes = 64;
inline constexpr uint64_t kMaxInodes = (uint64_t{1} << 32) - 1;

struct MkfsOptions {
  uint64_t inode_count = 0;    // 0: one inode per 16 KiB of region; else kMinInodes..kMaxInodes
  uint64_t journal_size = 0;   // 0: region/256 clamped to [256 KiB, 16 MiB]; else >= kMinJournalSize
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  std::string label;
};

// Fills the layout fields of a superblock for a region of `region_size` bytes, checking
// every option against its limits. EINVAL, with a message naming the limit, when the
// options are out of range or the region is too small for the requested metadata.
Result<format::Superblock> ComputeLayout(uint64_t region_size, const MkfsOptions& opts);

// Writes a new empty filesystem: zeroes the journal, state and bitmaps, creates the root
// directory, writes the backup superblock and the copy, then the primary last.
Status Format(pmem::Region& region, const MkfsOptions& opts);

void SealSuperblock(format::Superblock& sb);  // sets the crc
// Checks magic, crc, version and that every area lies inside a region of `region_size`.
// EUCLEAN / EBADMSG / EPROTONOSUPPORT name what is wrong.
Status ValidateSuperblock(const format::Superblock& sb, uint64_t region_size);

enum class SuperblockSource : uint8_t {
  kPrimary,
  kCopy,      // block 1
  kBackup,    // sb.backup_off
};
struct LoadedSuperblock {
  format::Superblock sb;
  bool from_backup = false;  // the primary is damaged (sb comes from the copy or the backup)
  SuperblockSource source = SuperblockSource::kPrimary;
};
// Optional for the probes below: false when the block at a region offset is known to read
// as zeros without being read (a hole of a sparse region file). Reading a hole through a
// shared mapping of a tmpfs file allocates it, so mkfs, which must leave a region it
// refuses exactly as it was, asks before every read. Empty: every block is read.
using HoleProbe = std::function<bool(uint64_t off)>;

// Reads the primary superblock; when it is damaged, the copy in block 1, then the backup:
// in the last block of the device, and at the place the damaged primary still names.
// ENODATA only when the region carries no pmemfs signature at all (HasPmemfsSignature);
// a region that does but has no valid superblock gives EUCLEAN (run fsck, never mkfs).
Result<LoadedSuperblock> ReadSuperblock(const pmem::Region& region, const HoleProbe& readable = {});

// True when any of pmemfs's signatures is present: the magic of the primary, the copy or
// the backup in the device's last block, the state block's or the journal's magic. Used
// to refuse advice (or actions) that would destroy a damaged filesystem.
bool HasPmemfsSignature(const pmem::Region& region, const HoleProbe& readable = {});

std::string UuidString(const uint8_t uuid[16]);

}  // namespace pmemfs::extent
