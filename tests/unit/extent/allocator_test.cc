// SPDX-License-Identifier: BSD-3-Clause
// The block allocator (alignment 4 KiB..1 GiB, fragmentation, ENOSPC, staging through a
// transaction, reload from the bitmap) and the inode bitmap.
#include <set>

#include "extent/allocator.h"
#include "extent/journal.h"
#include "extent/superblock.h"
#include "pmem/dram_region.h"
#include "testutil.h"

namespace pmemfs::extent {
namespace {

class AllocatorTest : public ::testing::Test {
 protected:
  void Init(uint64_t size) {
    region_ = std::make_unique<pmem::DramRegion>(size);
    ASSERT_OK(Format(*region_, {}));
    auto loaded = ReadSuperblock(*region_);
    ASSERT_OK(loaded);
    sb_ = loaded->sb;
    journal_ = std::make_unique<Journal>(*region_, sb_);
    ASSERT_OK(journal_->Recover());
    alloc_ = std::make_unique<BlockAllocator>(*region_, sb_);
    alloc_->Load();
  }
  // Reserves and commits a run.
  extent::Run Use(uint64_t want, uint64_t goal = 0, uint64_t align = 1, bool exact = false) {
    auto r = alloc_->Reserve(want, goal, align, exact);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    Tx tx(*region_);
    alloc_->StageUse(tx, *r);
    EXPECT_OK(journal_->Commit(tx));
    return *r;
  }
  void Free(extent::Run r) {
    Tx tx(*region_);
    alloc_->StageFree(tx, r);
    EXPECT_OK(journal_->Commit(tx));
  }

  std::unique_ptr<pmem::DramRegion> region_;
  format::Superblock sb_{};
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<BlockAllocator> alloc_;
};

TEST_F(AllocatorTest, MetadataIsInUseAndDataIsFree) {
  Init(64 << 20);
  uint64_t data_blk = format::OffBlock(sb_.data_off);
  EXPECT_TRUE(alloc_->InUse({0, data_blk}));
  EXPECT_EQ(alloc_->free_blocks() + data_blk + 1, sb_.total_blocks);  // + the backup superblock
  extent::Run r = Use(10);
  EXPECT_GE(r.start, data_blk);
  EXPECT_EQ(r.len, 10u);
  EXPECT_TRUE(alloc_->InUse(r));
}

TEST_F(AllocatorTest, AlignmentFromFourKibToOneGib) {
  Init(3ull << 30);  // sparse anonymous memory: only metadata is touched
  for (uint64_t align_bytes : {4096ull, 65536ull, 2ull << 20, 1ull << 30}) {
    uint64_t align = align_bytes / format::kBlockSize;
    extent::Run r = Use(align, 0, align, true);
    EXPECT_EQ(r.start % align, 0u) << align_bytes;
    EXPECT_EQ(r.len, align) << align_bytes;
  }
  // A second 1 GiB-aligned GiB does not fit in 3 GiB once the first is taken and metadata
  // occupies the start: ENOSPC, and the free count is unchanged.
  uint64_t free_before = alloc_->free_blocks();
  auto none = alloc_->Reserve(1ull << 18, 0, 1ull << 18, true);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.code(), ENOSPC);
  EXPECT_EQ(alloc_->free_blocks(), free_before);
}

TEST_F(AllocatorTest, FragmentationAndGoal) {
  Init(16 << 20);
  std::vector<extent::Run> runs;
  while (true) {
    auto r = alloc_->Reserve(1, 0, 1, true);
    if (!r.ok()) break;
    Tx tx(*region_);
    alloc_->StageUse(tx, *r);
    ASSERT_OK(journal_->Commit(tx));
    runs.push_back(*r);
  }
  EXPECT_EQ(alloc_->free_blocks(), 0u);
  EXPECT_EQ(alloc_->Reserve(1, 0, 1, false).code(), ENOSPC);
  // Free every other block: no run of two exists any more.
  for (size_t i = 0; i < runs.size(); i += 2) Free(runs[i]);
  EXPECT_EQ(alloc_->free_blocks(), (runs.size() + 1) / 2);
  EXPECT_EQ(alloc_->Reserve(2, 0, 1, true).code(), ENOSPC);
  auto partial = alloc_->Reserve(8, 0, 1, false);  // non-exact: a shorter run is fine
  ASSERT_OK(partial);
  EXPECT_EQ(partial->len, 1u);
  EXPECT_FALSE(alloc_->InUse(*partial));
  alloc_->Unreserve(*partial);
  // The goal is honoured: the first free block at or after it.
  auto near = alloc_->Reserve(1, runs[100].start, 1, false);
  ASSERT_OK(near);
  EXPECT_EQ(near->start, runs[100].start);
  alloc_->Unreserve(*near);
  // Freeing the rest coalesces back into long runs.
  for (size_t i = 1; i < runs.size(); i += 2) Free(runs[i]);
  auto whole = alloc_->Reserve(runs.size(), 0, 1, true);
  ASSERT_OK(whole);
  EXPECT_EQ(whole->len, runs.size());
}

TEST_F(AllocatorTest, StagedChangesFollowTheTransaction) {
  Init(16 << 20);
  uint64_t free0 = alloc_->free_blocks();
  {
    auto r = alloc_->Reserve(5, 0, 1, true);
    ASSERT_OK(r);
    Tx tx(*region_);
    alloc_->StageUse(tx, *r);
    // tx destroyed without commit: the run returns to the free map.
  }
  EXPECT_EQ(alloc_->free_blocks(), free0);
  extent::Run a = Use(5);
  extent::Run b = Use(5);
  EXPECT_GE(b.start, a.end());  // no overlap
  {
    Tx tx(*region_);
    alloc_->StageFree(tx, a);
    // A staged free is not allocatable before the commit.
    auto r = alloc_->Reserve(5, a.start, 1, true);
    ASSERT_OK(r);
    EXPECT_NE(r->start, a.start);
    alloc_->Unreserve(*r);
    ASSERT_OK(journal_->Commit(tx));
  }
  EXPECT_FALSE(alloc_->InUse(a));
  EXPECT_EQ(alloc_->free_blocks(), free0 - 5);
  // A fresh allocator loaded from the bitmap sees the same state.
  BlockAllocator reloaded(*region_, sb_);
  reloaded.Load();
  EXPECT_EQ(reloaded.free_blocks(), alloc_->free_blocks());
  EXPECT_TRUE(reloaded.InUse(b));
  EXPECT_FALSE(reloaded.InUse(a));
}

TEST_F(AllocatorTest, InodeBitmapAllocatesUntilFull) {
  region_ = std::make_unique<pmem::DramRegion>(16 << 20);
  ASSERT_OK(Format(*region_, {.inode_count = 64}));
  auto loaded = ReadSuperblock(*region_);
  ASSERT_OK(loaded);
  sb_ = loaded->sb;
  Journal j(*region_, sb_);
  ASSERT_OK(j.Recover());
  InodeBitmap inodes(*region_, sb_);
  inodes.Load();
  EXPECT_TRUE(inodes.InUse(format::kRootIno));
  std::set<uint64_t> got;
  uint64_t free0 = inodes.free_inodes();
  for (uint64_t i = 0; i < free0; ++i) {
    Tx tx(*region_);
    auto ino = inodes.Allocate(tx);
    ASSERT_OK(ino);
    ASSERT_OK(j.Commit(tx));
    EXPECT_NE(*ino, 0u);
    EXPECT_TRUE(got.insert(*ino).second) << "inode " << *ino << " handed out twice";
  }
  Tx full(*region_);
  EXPECT_EQ(inodes.Allocate(full).code(), ENOSPC);
  Tx tx(*region_);
  inodes.StageFree(tx, *got.begin());
  ASSERT_OK(j.Commit(tx));
  EXPECT_EQ(inodes.free_inodes(), 1u);
  InodeBitmap reloaded(*region_, sb_);
  reloaded.Load();
  EXPECT_EQ(reloaded.free_inodes(), 1u);
  EXPECT_FALSE(reloaded.InUse(*got.begin()));
}

// Issue 11 bug 1, at the allocator: on a nearly full region, one transaction takes a run
// inside bitmap word W after the goal, wraps around to a run spanning words W-1..W, then
// takes a run inside word W before the goal. Every run must be marked in use after the
// commit and after a reload (the third staging of word W, the same range as the first,
// used to be applied before the stale copy of W in the second).
TEST_F(AllocatorTest, FirstFitWrapAroundInOneTransactionMarksEveryRun) {
  Init(64 << 20);
  const uint64_t first = format::OffBlock(sb_.data_off);
  Use(alloc_->free_blocks());  // the whole data area
  ASSERT_EQ(alloc_->free_blocks(), 0u);
  const uint64_t w = (first + 64 + 63) / 64;  // word W-1 and W wholly in the data area
  const uint64_t goal = w * 64 + 20;
  extent::Run after{w * 64 + 30, 2}, spanning{w * 64 - 2, 4}, before{w * 64 + 6, 3};
  for (const extent::Run& r : {after, spanning, before}) Free(r);
  Tx tx(*region_);
  std::vector<extent::Run> got;
  for (uint64_t g = goal; got.size() < 3;) {
    auto r = alloc_->Reserve(64, g, 1, false);
    ASSERT_OK(r);
    alloc_->StageUse(tx, *r);
    got.push_back(*r);
    g = r->end();
  }
  ASSERT_EQ(got[0].start, after.start);
  ASSERT_EQ(got[1].start, spanning.start) << "wrapped around to the first free run";
  ASSERT_EQ(got[2].start, before.start);
  ASSERT_OK(journal_->Commit(tx));
  for (const extent::Run& r : got) EXPECT_TRUE(alloc_->InUse(r)) << r.start;
  alloc_->Load();
  EXPECT_EQ(alloc_->free_blocks(), 0u);
}

}  // namespace
}  // namespace pmemfs::extent
