// SPDX-License-Identifier: BSD-3-Clause
// Xattr runs (format.h): the consecutive blocks holding all of an inode's extended
// attributes. Read and validated here for the daemon and fsck; written whole, out of place,
// by the fs layer (a new run is filled before the transaction that switches to it).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "extent/format.h"
#include "pmem/region.h"

namespace pmemfs::extent {

using XattrList = std::vector<std::pair<std::string, std::string>>;

inline constexpr uint64_t kXattrValueMax = 65536;  // XATTR_SIZE_MAX

struct XattrRun {
  XattrList list;
  uint32_t nblocks = 0;  // 0: the inode has no run
};

// The run inode `ino` refers to at region offset `off` (0: none), validated: magic, owner,
// length within kMaxXattrBlocks and the data area, every entry inside `used`. EUCLEAN when
// damaged.
Result<XattrRun> ReadXattrRun(const pmem::Region& region, const format::Superblock& sb, uint64_t ino,
                              uint64_t off);

// Blocks a run holding `list` needs (0 for an empty list); more than kMaxXattrBlocks when
// the list does not fit in any run.
uint64_t XattrRunBlocks(const XattrList& list);

// The bytes of a run of `nblocks` blocks holding `list` (only the header and entries; the
// rest of the run is never read). REQUIRES: nblocks >= XattrRunBlocks(list).
std::vector<uint8_t> SerializeXattrRun(const XattrList& list, uint64_t ino, uint32_t nblocks);

}  // namespace pmemfs::extent
