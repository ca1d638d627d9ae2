// SPDX-License-Identifier: BSD-3-Clause
// ExtentMap: the DRAM view of one inode's extents, sorted by logical block, each with the
// region offset of the slot that holds it on media (one of the inode's inline slots or a
// slot of an ExtentBlock in the inode's chain).
//
// Changes are staged into a Tx: slots of extent blocks are written through the Tx, inline
// slots and the inode's extent_block/blocks fields are changed in the caller's working copy
// of the inode, which the caller stages once at the end. If the Tx aborts, the DRAM view is
// stale and must be dropped (the owner reloads it).
//
// Thread-safety: none; the owner's inode lock protects it.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/result.h"
#include "extent/allocator.h"
#include "extent/format.h"
#include "extent/tx.h"
#include "pmem/region.h"

namespace pmemfs::extent {

class ExtentMap {
 public:
  // Reads and validates the inode's extents (within the data area, no overlaps, sane chain).
  // EUCLEAN on corruption.
  static Result<ExtentMap> Load(const pmem::Region& region, const format::Superblock& sb, uint64_t ino,
                                const format::Inode& inode);

  struct Entry {
    format::Extent e;
    uint64_t slot;  // region offset of the slot
  };
  using Map = std::map<uint64_t, Entry>;  // lblk -> entry
  const Map& entries() const { return map_; }
  // The first extent that ends after `lblk` (it may start after `lblk`), or nullptr.
  const format::Extent* Next(uint64_t lblk) const;
  uint64_t mapped_blocks() const { return mapped_; }

  // Maps [e.lblk, e.lblk+e.len) to e.pblk. REQUIRES: that logical range is unmapped.
  // Merges with a contiguous neighbour of the same flags.
  Status Insert(Tx& tx, format::Inode& inode, format::Extent e, BlockAllocator& alloc);
  // Unmaps [lblk, lblk+len); appends the region runs it released to `freed` (the caller
  // frees them). May need a slot to split an extent: ENOSPC possible.
  Status Remove(Tx& tx, format::Inode& inode, uint64_t lblk, uint64_t len, std::vector<Run>* freed,
                BlockAllocator& alloc);
  // Sets the flags of the mapped parts of [lblk, lblk+len), splitting extents as needed.
  Status SetFlags(Tx& tx, format::Inode& inode, uint64_t lblk, uint64_t len, uint32_t flags,
                  BlockAllocator& alloc);
  // Stages the release of every extent block of the chain (the extents themselves must
  // already be removed or be freed by the caller). Used when the inode is deleted.
  void FreeChain(Tx& tx, format::Inode& inode, BlockAllocator& alloc);

 private:
  ExtentMap(const pmem::Region& region, const format::Superblock& sb, uint64_t ino)
      : region_(&region), sb_(&sb), ino_(ino) {}
  Result<uint64_t> TakeSlot(Tx& tx, format::Inode& inode, BlockAllocator& alloc);
  void WriteSlot(Tx& tx, format::Inode& inode, uint64_t slot, const format::Extent& e);
  Status Place(Tx& tx, format::Inode& inode, format::Extent e, BlockAllocator& alloc);
  void Rewrite(Tx& tx, format::Inode& inode, Map::iterator it, format::Extent e);
  void Drop(Tx& tx, format::Inode& inode, Map::iterator it);
  void MergeAround(Tx& tx, format::Inode& inode, uint64_t lblk);

  const pmem::Region* region_;
  const format::Superblock* sb_;
  uint64_t ino_;
  Map map_;
  std::vector<uint64_t> free_slots_;
  uint64_t mapped_ = 0;
};

}  // namespace pmemfs::extent
