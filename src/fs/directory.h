// SPDX-License-Identifier: BSD-3-Clause
// DirIndex: the DRAM index of one directory, built from its blocks on first use.
//
// On media a directory is a list of 4 KiB blocks (its extent map, no holes) of 64-byte slots;
// an entry takes 1..5 consecutive slots of one block. Slot numbers (block * 64 + slot) are the
// readdir cookies: entries never move, so a cookie stays valid while the directory changes.
// The index maps names to slot numbers (lookup in O(1) in directories of any size) and
// keeps, per block, which slots are used and which start an entry.
//
// Thread-safety: none; protected by the filesystem lock (shared to read, exclusive to change).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "extent/format.h"
#include "extent/tx.h"
#include "pmem/region.h"

namespace pmemfs::fs {

struct DirEntryView {
  uint64_t ino;
  uint32_t hash;
  uint8_t type;
  std::string_view name;  // points into the region; valid while the lock is held
  uint64_t slotno;
};

class DirIndex {
 public:
  // `blocks` are the region offsets of the directory's logical blocks, in order.
  static Result<DirIndex> Load(const pmem::Region& region, std::vector<uint64_t> blocks);

  size_t size() const { return names_.size(); }
  // The slot of `name`, or -1.
  int64_t Find(std::string_view name) const;
  DirEntryView At(uint64_t slotno) const;
  // The first entry at slot >= `slotno`, or false.
  bool NextFrom(uint64_t slotno, DirEntryView* out) const;

  // A slot run for a name of `name_len` bytes, or -1 when every block is full (the caller
  // adds a block with AddBlock and retries).
  int64_t FindFree(uint32_t name_len) const;
  void AddBlock(uint64_t region_off);
  uint64_t nblocks() const { return blocks_.size(); }

  // Stage entry changes. The DRAM index changes at once; the caller drops the index if the
  // Tx aborts.
  void StageAdd(extent::Tx& tx, uint64_t slotno, std::string_view name, uint64_t ino, uint8_t type);
  void StageRemove(extent::Tx& tx, uint64_t slotno);
  // Repoints an existing entry at another inode (rename over, exchange).
  void StageRetarget(extent::Tx& tx, uint64_t slotno, uint64_t ino, uint8_t type);

 private:
  explicit DirIndex(const pmem::Region& region) : region_(&region) {}
  uint64_t SlotOff(uint64_t slotno) const {
    return blocks_[slotno / format::kDirSlotsPerBlock] + (slotno % format::kDirSlotsPerBlock) * format::kDirSlotSize;
  }

  const pmem::Region* region_;
  std::vector<uint64_t> blocks_;                   // region offsets
  std::vector<uint64_t> used_;                     // per block: slots in use
  std::vector<uint64_t> starts_;                   // per block: slots that start an entry
  std::unordered_map<std::string, uint64_t> names_;  // name -> slotno
  mutable uint64_t free_hint_ = 0;                 // a block that may have room
};

uint32_t NameHash(std::string_view name);

}  // namespace pmemfs::fs
