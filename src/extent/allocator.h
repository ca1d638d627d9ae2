// SPDX-License-Identifier: BSD-3-Clause
// BlockAllocator: free-space tracking. The block bitmap on media is the truth (changed only
// through transactions); a DRAM map of free runs, built at mount, answers allocations fast.
//
// Blocks move: free -> reserved (Reserve, DRAM only) -> in use (StageUse in a Tx; the Tx's
// abort hook returns them) and in use -> free (StageFree; they return to the free map only
// when the Tx commits, so a block is never reused before the change that freed it is durable).
//
// Thread-safety: internally locked; lock order is filesystem lock -> allocator.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "common/result.h"
#include "extent/format.h"
#include "extent/tx.h"
#include "pmem/region.h"

namespace pmemfs::extent {

struct Run {
  uint64_t start = 0;  // region block
  uint64_t len = 0;    // blocks
  uint64_t end() const { return start + len; }
};

class BlockAllocator {
 public:
  BlockAllocator(const pmem::Region& region, const format::Superblock& sb);

  // Builds the free map from the on-media bitmap.
  void Load();

  // Reserves one run of 1..`want` blocks whose start is a multiple of `align` blocks,
  // preferring the first free run at or after `goal`. With `exact`, only a run of exactly
  // `want` blocks will do. ENOSPC when nothing fits.
  Result<Run> Reserve(uint64_t want, uint64_t goal, uint64_t align, bool exact);
  // Marks a reserved run in use, in `tx`; the run returns to the free map if `tx` aborts.
  void StageUse(Tx& tx, Run r);
  // Marks an in-use run free, in `tx`; it becomes allocatable once `tx` commits.
  void StageFree(Tx& tx, Run r);
  // Returns a reserved run that was never staged.
  void Unreserve(Run r);

  uint64_t free_blocks() const;
  uint64_t total_blocks() const { return sb_.total_blocks; }
  // True when every block of `r` is marked in use in the bitmap on media. REQUIRES no
  // commit running (fsck, tests).
  bool InUse(Run r) const;
  // True when no block of `r` is free in the DRAM map: in use, or taken by a transaction
  // in flight. Thread-safe.
  bool Taken(Run r) const;
  // The runs not free in the DRAM map at this instant, in order.
  std::vector<Run> TakenRuns() const;

 private:
  void StageBits(Tx& tx, Run r, bool set);
  void InsertFreeLocked(Run r);

  const pmem::Region& region_;
  format::Superblock sb_;
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> free_;  // start -> len, coalesced. GUARDED_BY(mu_)
  uint64_t free_count_ = 0;            // GUARDED_BY(mu_)
};

// InodeBitmap: which inode slots are in use. The on-media bitmap changes only through
// transactions (bit operations); a DRAM copy also marks the slots that transactions in
// flight have taken or are freeing, so that concurrent transactions never take one slot
// twice and a freed slot is reused only once the freeing transaction has committed.
// Allocation scans from a rotating cursor. Thread-safe.
class InodeBitmap {
 public:
  InodeBitmap(const pmem::Region& region, const format::Superblock& sb);
  void Load();  // builds the DRAM copy
  // Takes a free slot and stages it in use; it returns to the free slots if `tx` aborts.
  // ENOSPC when the table is full.
  Result<uint64_t> Allocate(Tx& tx);
  // Stages the slot free; it is reusable once `tx` commits.
  void StageFree(Tx& tx, uint64_t ino);
  // In use as of the last commit (a DRAM copy of the bitmap on media, so that readers need
  // not read words a commit may be writing).
  bool InUse(uint64_t ino) const;
  uint64_t free_inodes() const;
  uint64_t inode_count() const { return sb_.inode_count; }

 private:
  void Release(uint64_t ino);

  const pmem::Region& region_;
  format::Superblock sb_;
  mutable std::mutex mu_;
  std::vector<uint64_t> taken_;      // in use on media or by a transaction in flight. GUARDED_BY(mu_)
  std::vector<uint64_t> committed_;  // in use on media. GUARDED_BY(mu_)
  uint64_t cursor_ = 0;          // word index. GUARDED_BY(mu_)
  uint64_t free_ = 0;            // GUARDED_BY(mu_)
};

}  // namespace pmemfs::extent
