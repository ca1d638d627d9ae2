// SPDX-License-Identifier: BSD-3-Clause
// Extent maps: insert with merging, removal that splits, flag changes over partial ranges,
// overflow into extent blocks, and a round trip through the media.
#include "extent/allocator.h"
#include "extent/extent_map.h"
#include "extent/journal.h"
#include "extent/superblock.h"
#include "pmem/dram_region.h"
#include "testutil.h"

namespace pmemfs::extent {
namespace {

using format::Extent;
using format::kExtentUnwritten;

class ExtentMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(Format(region_, {}));
    auto loaded = ReadSuperblock(region_);
    ASSERT_OK(loaded);
    sb_ = loaded->sb;
    journal_ = std::make_unique<Journal>(region_, sb_);
    ASSERT_OK(journal_->Recover());
    alloc_ = std::make_unique<BlockAllocator>(region_, sb_);
    alloc_->Load();
    auto m = ExtentMap::Load(region_, sb_, kIno, inode_);
    ASSERT_OK(m);
    map_ = std::make_unique<ExtentMap>(std::move(m).value());
    base_ = format::OffBlock(sb_.data_off) + 1000;  // region blocks used as "data"
  }
  void Insert(uint64_t lblk, uint64_t pblk, uint32_t len, uint32_t flags = 0) {
    Tx tx(region_);
    ASSERT_OK(map_->Insert(tx, inode_, Extent{lblk, pblk, len, flags}, *alloc_));
    ASSERT_OK(journal_->Commit(tx));
  }
  std::vector<extent::Run> Remove(uint64_t lblk, uint64_t len) {
    std::vector<extent::Run> freed;
    Tx tx(region_);
    EXPECT_OK(map_->Remove(tx, inode_, lblk, len, &freed, *alloc_));
    EXPECT_OK(journal_->Commit(tx));
    return freed;
  }
  // "lblk+len@pblk[u]" for each extent.
  std::string Dump(const ExtentMap& m) {
    std::string out;
    for (const auto& [lblk, entry] : m.entries()) {
      const Extent& e = entry.e;
      EXPECT_EQ(lblk, e.lblk);
      out += (out.empty() ? "" : " ") + std::to_string(e.lblk) + "+" + std::to_string(e.len) + "@" +
             std::to_string(e.pblk - base_) + (e.flags & kExtentUnwritten ? "u" : "");
    }
    return out;
  }
  std::string Reloaded() {
    auto m = ExtentMap::Load(region_, sb_, kIno, inode_);
    EXPECT_OK(m);
    return m.ok() ? Dump(*m) : "";
  }

  static constexpr uint64_t kIno = 7;
  pmem::DramRegion region_{64 << 20};
  format::Superblock sb_{};
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<BlockAllocator> alloc_;
  format::Inode inode_{};
  std::unique_ptr<ExtentMap> map_;
  uint64_t base_ = 0;
};

TEST_F(ExtentMapTest, InsertMergesContiguousNeighbours) {
  Insert(0, base_, 4);
  Insert(4, base_ + 4, 4);  // contiguous in both spaces: merged
  EXPECT_EQ(Dump(*map_), "0+8@0");
  Insert(8, base_ + 20, 2);  // contiguous logically only: separate
  Insert(10, base_ + 22, 2, kExtentUnwritten);  // different flags: separate
  EXPECT_EQ(Dump(*map_), "0+8@0 8+2@20 10+2@22u");
  EXPECT_EQ(map_->mapped_blocks(), 12u);
  ASSERT_NE(map_->Next(9), nullptr);
  EXPECT_EQ(map_->Next(9)->lblk, 8u);
  EXPECT_EQ(map_->Next(12), nullptr);
  EXPECT_EQ(Reloaded(), Dump(*map_));
}

TEST_F(ExtentMapTest, RemoveSplitsAndReportsFreedRuns) {
  Insert(0, base_, 100);
  auto freed = Remove(10, 5);
  EXPECT_EQ(Dump(*map_), "0+10@0 15+85@15");
  ASSERT_EQ(freed.size(), 1u);
  EXPECT_EQ(freed[0].start, base_ + 10);
  EXPECT_EQ(freed[0].len, 5u);
  freed = Remove(5, 20);  // across the hole and into both extents
  EXPECT_EQ(Dump(*map_), "0+5@0 25+75@25");
  uint64_t total = 0;
  for (const extent::Run& r : freed) total += r.len;
  EXPECT_EQ(total, 15u);
  freed = Remove(90, 1000);  // past the end
  EXPECT_EQ(Dump(*map_), "0+5@0 25+65@25");
  EXPECT_EQ(Reloaded(), Dump(*map_));
}

// An extent that runs past either end of the range: once a hang (the loop did not advance).
TEST_F(ExtentMapTest, SetFlagsOverPartialRanges) {
  Insert(0, base_, 32, kExtentUnwritten);
  Tx tx(region_);
  ASSERT_OK(map_->SetFlags(tx, inode_, 8, 4, 0, *alloc_));
  ASSERT_OK(journal_->Commit(tx));
  EXPECT_EQ(Dump(*map_), "0+8@0u 8+4@8 12+20@12u");
  Tx tx2(region_);
  ASSERT_OK(map_->SetFlags(tx2, inode_, 0, 100, 0, *alloc_));  // runs past the end
  ASSERT_OK(journal_->Commit(tx2));
  EXPECT_EQ(Dump(*map_), "0+32@0");  // merged back once the flags agree
  EXPECT_EQ(Reloaded(), Dump(*map_));
}

TEST_F(ExtentMapTest, OverflowIntoExtentBlocksAndFreeChain) {
  // 400 discontiguous extents: 3 inline, the rest in a chain of extent blocks.
  for (uint64_t i = 0; i < 400; ++i) Insert(2 * i, base_ + 3 * i, 1);
  EXPECT_EQ(map_->entries().size(), 400u);
  EXPECT_NE(inode_.extent_block, 0u);
  EXPECT_EQ(Reloaded(), Dump(*map_));
  uint64_t free_with_chain = alloc_->free_blocks();
  Remove(0, 1000);
  EXPECT_TRUE(map_->entries().empty());
  Tx tx(region_);
  map_->FreeChain(tx, inode_, *alloc_);
  ASSERT_OK(journal_->Commit(tx));
  EXPECT_EQ(inode_.extent_block, 0u);
  EXPECT_GE(alloc_->free_blocks(), free_with_chain + 3);  // 397 slots need 3 blocks of 169
}

TEST_F(ExtentMapTest, LoadRejectsCorruptExtents) {
  inode_.inline_extents[0] = Extent{0, sb_.total_blocks - 1, 10, 0};  // runs off the region
  auto m = ExtentMap::Load(region_, sb_, kIno, inode_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.code(), EUCLEAN);
  inode_.inline_extents[0] = Extent{0, base_, 10, 0};
  inode_.inline_extents[1] = Extent{5, base_ + 50, 10, 0};  // overlaps logically
  m = ExtentMap::Load(region_, sb_, kIno, inode_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.code(), EUCLEAN);
  inode_.inline_extents[1] = Extent{};
  inode_.extent_block = 12345;  // not a block boundary in the data area
  m = ExtentMap::Load(region_, sb_, kIno, inode_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.code(), EUCLEAN);
}

}  // namespace
}  // namespace pmemfs::extent
