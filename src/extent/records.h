// Small helpers over on-media records: checksums and region offsets.
#pragma once

#include <cstddef>

#include "common/crc32c.h"
#include "extent/format.h"

namespace pmemfs::extent {

inline void SealInode(format::Inode& in) { in.crc = Crc32c(&in, offsetof(format::Inode, crc)); }
inline bool InodeCrcOk(const format::Inode& in) { return in.crc == Crc32c(&in, offsetof(format::Inode, crc)); }
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
