// SPDX-License-Identifier: BSD-3-Clause
// Small helpers over on-media records: checksums and region offsets.
#pragma once

#include <cstddef>

#include "common/crc32c.h"
#include "extent/format.h"

namespace pmemfs::extent {

// An inode's checksum covers all of it but the words that change without the rest (format
// 1.3): the time word of in-place writes (stored with their data, outside the journal) and
// the orphan links (changed in other inodes' transactions under the orphan list's lock).
// They count as zero. A format 1.1/1.2 inode, sealed over everything, is accepted too.
inline uint32_t InodeCrc(const format::Inode& in) {
  format::Inode c = in;
  c.data_time_ns = 0;
  c.next_orphan = c.prev_orphan = 0;
  return Crc32c(&c, offsetof(format::Inode, crc));
}
inline void SealInode(format::Inode& in) { in.crc = InodeCrc(in); }
inline bool InodeCrcOk(const format::Inode& in) {
  return in.crc == InodeCrc(in) || in.crc == Crc32c(&in, offsetof(format::Inode, crc));
}
// The inode as its next journaled change writes it: the time of an in-place write, when
// there was one since the last journaled change, becomes its mtime and ctime.
inline void FoldDataTime(format::Inode& in) {
  if (in.data_time_ns == 0) return;
  const format::Timespec t{static_cast<int64_t>(in.data_time_ns / 1000000000),
                           static_cast<uint32_t>(in.data_time_ns % 1000000000), 0};
  in.mtime = in.ctime = t;
  in.data_time_ns = 0;
}

inline uint64_t InodeOff(const format::Superblock& sb, uint64_t ino) {
  return sb.inode_table_off + ino * sizeof(format::Inode);
}
// True when a block run lies in the data area of the region.
inline bool InDataArea(const format::Superblock& sb, uint64_t pblk, uint64_t len) {
  uint64_t first = sb.data_off / format::kBlockSize, last = sb.backup_off / format::kBlockSize;
  return pblk >= first && len <= last - first && pblk <= last - len;
}
// A block reference held by an inode (extent_block, xattr_block): 0, or the byte offset
// of one whole block of the data area.
inline bool BlockRefOk(const format::Superblock& sb, uint64_t off) {
  return off == 0 || (off % format::kBlockSize == 0 && InDataArea(sb, off / format::kBlockSize, 1));
}

}  // namespace pmemfs::extent
