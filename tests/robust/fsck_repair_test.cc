// SPDX-License-Identifier: BSD-3-Clause
// fsck repairs each class of damage it reports, pinned one class per test on a small
// filesystem: what the daemon does before the repair, what fsck -n says (without writing),
// that fsck -y repairs it, that fsck -n is clean afterwards and what the files look like.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstring>
#include <memory>
#include <vector>

#include "extent/journal.h"
#include "extent/superblock.h"
#include "pmem/dram_region.h"
#include "robust/image_util.h"

namespace pmemfs::testing {
namespace {

using format::kRootIno;
const fs::Ctx kRoot{0, 0, 1};

class FsckRepairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);
    region_ = std::make_unique<pmem::DramRegion>(16ull << 20);
    ASSERT_TRUE(extent::Format(*region_, {}).ok());
    sb_ = extent::ReadSuperblock(*region_)->sb;
    Mount();
  }
  void Mount() {
    fs_.reset();
    auto m = fs::FileSystem::Mount(*region_, {});
    ASSERT_TRUE(m.ok()) << m.error().Message();
    fs_ = std::move(m).value();
  }
  void Unmount() { fs_.reset(); }
  uint64_t File(uint64_t dir, const std::string& name, const std::string& data = "") {
    auto e = fs_->Mknod(kRoot, dir, name, S_IFREG | 0644, 0);
    EXPECT_TRUE(e.ok()) << name;
    if (!data.empty()) {
      EXPECT_TRUE(fs_->Write(e->ino, 0, data.data(), data.size()).ok());
    }
    return e->ino;
  }
  uint64_t Dir(uint64_t dir, const std::string& name) { return fs_->Mkdir(kRoot, dir, name, 0755)->ino; }
  std::string Read(uint64_t ino) {
    std::string out;
    Status s = fs_->Read(ino, 0, 1 << 24, [&](const std::vector<fs::FileSystem::Piece>& pieces) {
      for (const auto& p : pieces) out += p.data ? std::string(static_cast<const char*>(p.data), p.len) : std::string(p.len, '\0');
    });
    return s.ok() ? out : "<" + s.error().Message() + ">";
  }
  format::Inode& InodeAt(uint64_t ino) { return *region_->At<format::Inode>(extent::InodeOff(sb_, ino)); }
  void Reseal(uint64_t ino) { extent::SealInode(InodeAt(ino)); }
  uint64_t LookupIno(uint64_t dir, const std::string& name) {
    auto e = fs_->Lookup(dir, name);
    return e.ok() ? e->ino : 0;
  }

  // fsck -n finds `expect` without writing; fsck -y repairs it; fsck -n is then clean.
  void ExpectRepaired(const std::string& expect) {
    Unmount();
    std::vector<uint8_t> before(region_->base(), region_->base() + region_->size());
    CheckRun check = RunCheck(*region_, false);
    EXPECT_EQ(std::memcmp(before.data(), region_->base(), before.size()), 0) << "fsck -n wrote";
    EXPECT_EQ(check.result.ExitCode(), 4) << check.report;
    EXPECT_NE(check.report.find(expect), std::string::npos) << "expected '" << expect << "' in:\n" << check.report;
    CheckRun fix = RunCheck(*region_, true);
    EXPECT_EQ(fix.result.ExitCode(), 1) << fix.report;
    CheckRun after = RunCheck(*region_, false);
    EXPECT_EQ(after.result.ExitCode(), 0) << after.report << "fsck -y said:\n" << fix.report;
    report_ = fix.report;
    Mount();
    EXPECT_EQ(ReadEverything(*fs_, false), "");
  }

  std::unique_ptr<pmem::DramRegion> region_;
  std::unique_ptr<fs::FileSystem> fs_;
  format::Superblock sb_{};
  std::string report_;
};

TEST_F(FsckRepairTest, CheckWritesNothingAndSeesThePendingTransaction) {
  File(kRootIno, "a", "one");
  File(kRootIno, "b", "two");
  (void)fs_.release();  // a crash: the last transaction (b's write) stays in the log
  std::vector<uint8_t> before(region_->base(), region_->base() + region_->size());
  CheckRun check = RunCheck(*region_, false);
  EXPECT_EQ(check.result.ExitCode(), 0) << check.report;
  EXPECT_EQ(std::memcmp(before.data(), region_->base(), before.size()), 0);
  // A pending transaction that would leave the image inconsistent is seen as replayed:
  // hand-craft one that marks inode 1000 in use (an empty slot).
  const uint64_t word_off = sb_.inode_bitmap_off + 1000 / 64 * 8;
  const uint64_t home = *region_->At<uint64_t>(word_off);
  extent::Journal j(*region_, sb_);
  extent::Tx tx(*region_);
  tx.Put(word_off, home | (uint64_t{1} << (1000 % 64)));
  ASSERT_TRUE(j.Commit(tx).ok());
  *region_->At<uint64_t>(word_off) = home;  // Commit wrote the home location too: only the log keeps it
  CheckRun pending = RunCheck(*region_, false);
  EXPECT_EQ(pending.result.ExitCode(), 4);
  EXPECT_NE(pending.report.find("slots marked in use hold no inode"), std::string::npos) << pending.report;
}

TEST_F(FsckRepairTest, RepairReplaysTheJournalAndLeavesItCheckpointed) {
  uint64_t a = File(kRootIno, "a", "before the crash");
  (void)fs_.release();
  // The home location of the last transaction is lost (the crash came before fence 2).
  ASSERT_FALSE(extent::Journal(*region_, sb_).Pending()->empty());
  InodeAt(a).size = 0;
  Reseal(a);
  CheckRun fix = RunCheck(*region_, true);
  EXPECT_EQ(fix.result.ExitCode(), 0) << fix.report;
  EXPECT_TRUE(extent::Journal(*region_, sb_).Pending()->empty()) << "the next mount would replay again";
  Mount();
  EXPECT_EQ(Read(a), "before the crash");
}

TEST_F(FsckRepairTest, StateBlockRebuilt) {
  uint64_t f = File(kRootIno, "f", "data");
  uint64_t orphan = File(kRootIno, "orphan", "gone");
  ASSERT_TRUE(fs_->Open(orphan, O_RDWR).ok());
  ASSERT_TRUE(fs_->Unlink(kRootIno, "orphan").ok());
  File(kRootIno, "later");  // the log's last transaction no longer holds the state block
  (void)fs_.release();
  region_->At<format::StateBlock>(sb_.state_off)->magic ^= 1;
  EXPECT_EQ(fs::FileSystem::Mount(*region_, {}).code(), EUCLEAN);  // not even read-only
  EXPECT_EQ(fs::FileSystem::Mount(*region_, {.read_only = true}).code(), EUCLEAN);
  ExpectRepaired("state block damaged");
  EXPECT_NE(report_.find("orphan list"), std::string::npos) << report_;
  EXPECT_EQ(Read(f), "data");
  EXPECT_EQ(InodeAt(orphan).mode, 0u) << "the orphan was freed";
}

TEST_F(FsckRepairTest, InodeBitmapRebuiltFromTheInodesInUse) {
  uint64_t d = Dir(kRootIno, "d");
  uint64_t f = File(d, "f", "data");
  Unmount();
  *region_->At<uint64_t>(sb_.inode_bitmap_off) &= ~uint64_t{0b1100};  // d and f marked free
  Mount();
  EXPECT_EQ(fs_->Lookup(kRootIno, "d").code(), ESTALE);
  ExpectRepaired("marked free in the inode bitmap");
  EXPECT_EQ(Read(LookupIno(LookupIno(kRootIno, "d"), "f")), "data");
  EXPECT_EQ(LookupIno(d, "f"), f);
}

TEST_F(FsckRepairTest, LostSubtreeIsLinkedIntoLostFoundOnceWithoutSecondNames) {
  uint64_t d1 = Dir(kRootIno, "d1");
  uint64_t d2 = Dir(d1, "d2");
  uint64_t d3 = Dir(d2, "d3");
  uint64_t f = File(d3, "f", "deep");
  Unmount();
  for (const DirSlot& s : EntriesOf(*region_, sb_, kRootIno))
    if (s.name == "d1") std::memset(region_->base() + s.off, 0, 64);
  ExpectRepaired("inode " + std::to_string(d1) + ": in use but in no directory");
  EXPECT_EQ(report_.find("inode " + std::to_string(d2) + ": in use"), std::string::npos) << report_;
  uint64_t lf = LookupIno(kRootIno, "lost+found");
  ASSERT_NE(lf, 0u);
  EXPECT_EQ(LookupIno(lf, "#" + std::to_string(d1)), d1);
  EXPECT_EQ(LookupIno(lf, "#" + std::to_string(d2)), 0u) << "a second name for a directory";
  EXPECT_EQ(LookupIno(d1, "d2"), d2);
  EXPECT_EQ(LookupIno(d2, "d3"), d3);
  EXPECT_EQ(Read(LookupIno(d3, "f")), "deep");
  EXPECT_EQ(LookupIno(d1, ".."), lf);
  EXPECT_EQ(f, LookupIno(d3, "f"));
}

TEST_F(FsckRepairTest, DirectoriesNamingEachOtherOutsideTheTree) {
  uint64_t a = Dir(kRootIno, "a");
  uint64_t b = Dir(a, "b");
  Unmount();
  // a's name goes; b gets an entry naming a: a cycle no path from the root reaches.
  for (const DirSlot& s : EntriesOf(*region_, sb_, kRootIno))
    if (s.name == "a") std::memset(region_->base() + s.off, 0, 64);
  Mount();
  ASSERT_TRUE(fs_->Link(File(b, "x"), b, "y").ok());
  Unmount();
  for (const DirSlot& s : EntriesOf(*region_, sb_, b)) {
    if (s.name != "x") continue;
    format::Dirent de = s.de;
    de.ino = a;
    de.type = 4;
    std::memcpy(region_->base() + s.off, &de, sizeof(de));
  }
  ExpectRepaired("in use but in no directory");
  uint64_t lf = LookupIno(kRootIno, "lost+found");
  EXPECT_EQ(LookupIno(lf, "#" + std::to_string(a)), a);
  EXPECT_EQ(LookupIno(a, "b"), b);
  EXPECT_EQ(LookupIno(b, "x"), 0u) << "the entry naming a again is removed";
}

TEST_F(FsckRepairTest, SymlinkTheDaemonRefusesIsCleared) {
  auto l = fs_->Symlink(kRoot, kRootIno, "l", "target");
  ASSERT_TRUE(l.ok());
  Unmount();
  InodeAt(l->ino).size = 5000;
  Reseal(l->ino);
  Mount();
  EXPECT_EQ(fs_->Readlink(l->ino).code(), EUCLEAN);
  ExpectRepaired("symlink " + std::to_string(l->ino) + ": size 5000");
  EXPECT_EQ(LookupIno(kRootIno, "l"), 0u);
}

TEST_F(FsckRepairTest, DirectoryWithAnUnwrittenExtentOrAHoleKeepsItsEntries) {
  for (bool hole : {false, true}) {
    SCOPED_TRACE(hole ? "hole" : "unwritten");
    uint64_t d = Dir(kRootIno, hole ? "holey" : "unwritten");
    for (int i = 0; i < 100; ++i) File(d, "name-" + std::to_string(i));  // two blocks
    Unmount();
    auto ex = ExtentsOf(*region_, sb_, d);
    ASSERT_FALSE(ex.empty());
    format::Extent e = ex.back().e;
    if (hole) e.lblk += 5;
    else e.flags = format::kExtentUnwritten;
    std::memcpy(region_->base() + ex.back().slot, &e, sizeof(e));
    if (ex.back().slot < sb_.data_off) Reseal(d);
    Mount();
    EXPECT_EQ(fs_->ReadDir(d, 0, false, [](std::string_view, const fs::Entry&, uint64_t) { return true; }).code(), EUCLEAN);
    ExpectRepaired(hole ? "has a hole" : "unwritten extent");
    int n = 0;
    ASSERT_TRUE(fs_->ReadDir(d, 0, false, [&](std::string_view, const fs::Entry&, uint64_t) { return ++n, true; }).ok());
    // A hole keeps every entry; dropping an unwritten block loses its entries (the daemon
    // never wrote them) and their files go to /lost+found.
    if (hole) {
      EXPECT_EQ(n, 102);
    }
  }
}

TEST_F(FsckRepairTest, NamedInodeOnTheOrphanListIsNotFreed) {
  uint64_t f = File(kRootIno, "named", "keep me");
  Unmount();
  InodeAt(f).flags |= format::kInodeOrphan;
  InodeAt(f).nlink = 0;
  Reseal(f);
  region_->At<format::StateBlock>(sb_.state_off)->orphan_head = f;
  ExpectRepaired("orphan list holds inode " + std::to_string(f) + ", which has a name");
  EXPECT_EQ(Read(LookupIno(kRootIno, "named")), "keep me");
  EXPECT_EQ(fs_->GetAttr(f)->st_nlink, 1u);
}

TEST_F(FsckRepairTest, EntryNamingAnOutOfRangeInodeIsSkippedByReaddirAndRemovedByFsck) {
  File(kRootIno, "a", "1");
  File(kRootIno, "b", "2");
  Unmount();
  for (const DirSlot& s : EntriesOf(*region_, sb_, kRootIno)) {
    if (s.name != "a") continue;
    uint64_t bad = sb_.inode_count + 5;
    std::memcpy(region_->base() + s.off, &bad, 8);
  }
  Mount();
  for (bool plus : {false, true}) {
    std::vector<std::string> names;
    Status s = fs_->ReadDir(kRootIno, 0, plus, [&](std::string_view n, const fs::Entry&, uint64_t) {
      names.emplace_back(n);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.error().Message();  // was: ESTALE for the whole listing
    EXPECT_EQ(names, (std::vector<std::string>{".", "..", "b"}));
  }
  ExpectRepaired("names inode " + std::to_string(sb_.inode_count + 5) + ", beyond the inode table");
}

TEST_F(FsckRepairTest, NameBytesParsedAsEntriesNeverBecomeASecondName) {
  uint64_t d = Dir(kRootIno, "victim-dir");
  uint64_t other = Dir(kRootIno, "other");
  std::string long_name(100, 'n');
  File(other, long_name, "x");
  Unmount();
  // The long entry "removed" as the daemon's old removal did (ino 0 in its first slot
  // only), its name bytes holding a well-formed entry naming a directory that has a name.
  for (const DirSlot& s : EntriesOf(*region_, sb_, other)) {
    if (s.name != long_name) continue;
    std::memset(region_->base() + s.off, 0, 8);
    format::Dirent fake{d, fs::NameHash("evil"), 4, 4, 1, 0};
    std::memcpy(region_->base() + s.off + 64, &fake, sizeof(fake));
    std::memcpy(region_->base() + s.off + 64 + sizeof(fake), "evil", 4);
  }
  ExpectRepaired("a second name for directory " + std::to_string(d));
  EXPECT_EQ(LookupIno(other, "evil"), 0u);
  EXPECT_EQ(LookupIno(kRootIno, "victim-dir"), d);
}

TEST_F(FsckRepairTest, SecondNameForADirectoryIsRemoved) {
  uint64_t d = Dir(kRootIno, "d");
  File(kRootIno, "f");
  Unmount();
  for (const DirSlot& s : EntriesOf(*region_, sb_, kRootIno)) {
    if (s.name != "f") continue;
    format::Dirent de = s.de;
    de.ino = d;
    de.type = 4;
    std::memcpy(region_->base() + s.off, &de, sizeof(de));
  }
  ExpectRepaired("a second name for directory " + std::to_string(d));
  EXPECT_EQ(LookupIno(kRootIno, "f"), 0u);
  EXPECT_EQ(LookupIno(kRootIno, "d"), d);
}

// A crafted extent pointing into another file's blocks: the daemon refuses the alias
// (EUCLEAN, also for a direct mapping), fsck drops the later owner's extent.
TEST_F(FsckRepairTest, AliasedExtentIsRefusedByTheDaemonAndDroppedByFsck) {
  std::string secret(8192, 's');
  uint64_t a = File(kRootIno, "a-secret", secret);
  uint64_t b = File(kRootIno, "b-attacker", std::string(8192, 'b'));
  Unmount();
  auto ea = ExtentsOf(*region_, sb_, a), eb = ExtentsOf(*region_, sb_, b);
  ASSERT_EQ(ea.size(), 1u);
  ASSERT_EQ(eb.size(), 1u);
  format::Extent e = eb[0].e;
  e.pblk = ea[0].e.pblk;
  std::memcpy(region_->base() + eb[0].slot, &e, sizeof(e));
  Reseal(b);
  // Whichever is loaded second is refused.
  Mount();
  EXPECT_EQ(Read(a), secret);
  EXPECT_EQ(fs_->Read(b, 0, 10, [](const std::vector<fs::FileSystem::Piece>&) {}).code(), EUCLEAN);
  Mount();
  EXPECT_EQ(fs_->Read(b, 0, 10, [](const std::vector<fs::FileSystem::Piece>&) {}).ok(), true);
  EXPECT_EQ(fs_->Read(a, 0, 10, [](const std::vector<fs::FileSystem::Piece>&) {}).code(), EUCLEAN);
  ExpectRepaired("inode " + std::to_string(b) + ": region blocks " + std::to_string(ea[0].e.pblk));
  EXPECT_EQ(Read(a), secret);
  EXPECT_EQ(Read(b), std::string(8192, '\0')) << "b's dropped extent reads as zeros, never as a's data";
  // The blocks b used to own are free again, and b can be written.
  EXPECT_TRUE(fs_->Write(b, 0, "new", 3).ok());
  Unmount();
  EXPECT_EQ(RunCheck(*region_, false).result.ExitCode(), 0);
}

TEST_F(FsckRepairTest, ExtentOverFreeBlocksIsRefusedByTheDaemonAndMarkedByFsck) {
  uint64_t b = File(kRootIno, "b", std::string(4096, 'b'));
  Unmount();
  auto eb = ExtentsOf(*region_, sb_, b);
  format::Extent e = eb[0].e;
  e.pblk = sb_.total_blocks - 100;  // free space near the end
  std::memcpy(region_->base() + eb[0].slot, &e, sizeof(e));
  Reseal(b);
  Mount();
  EXPECT_EQ(fs_->Read(b, 0, 10, [](const std::vector<fs::FileSystem::Piece>&) {}).code(), EUCLEAN);
  ExpectRepaired("blocks in use but marked free");
  EXPECT_TRUE(fs_->Read(b, 0, 10, [](const std::vector<fs::FileSystem::Piece>&) {}).ok());
}

TEST_F(FsckRepairTest, RootRecreatedAndItsContentFound) {
  uint64_t d = Dir(kRootIno, "d");
  File(d, "f", "survives");
  Unmount();
  InodeAt(kRootIno).mode = 0170000 | 0755;  // an invalid type
  Reseal(kRootIno);
  EXPECT_EQ(fs::FileSystem::Mount(*region_, {}).code(), EUCLEAN);
  ExpectRepaired("root directory damaged");
  uint64_t lf = LookupIno(kRootIno, "lost+found");
  EXPECT_EQ(Read(LookupIno(LookupIno(lf, "#" + std::to_string(d)), "f")), "survives");
}

TEST_F(FsckRepairTest, ConsistentOrphansAreNotAProblem) {
  uint64_t o = File(kRootIno, "o", "open");
  ASSERT_TRUE(fs_->Open(o, O_RDWR).ok());
  ASSERT_TRUE(fs_->Unlink(kRootIno, "o").ok());
  (void)fs_.release();
  CheckRun check = RunCheck(*region_, false);
  EXPECT_EQ(check.result.ExitCode(), 0) << check.report;
  CheckRun fix = RunCheck(*region_, true);
  EXPECT_EQ(fix.result.ExitCode(), 0) << fix.report;
}

TEST_F(FsckRepairTest, NoSuperblockAnywhereIsAnOperationalError) {
  Unmount();
  std::memset(region_->base(), 0, 8192);
  std::memset(region_->base() + sb_.backup_off, 0, 4096);
  CheckRun check = RunCheck(*region_, true);
  EXPECT_EQ(check.result.ExitCode(), 8) << check.report;
}

}  // namespace
}  // namespace pmemfs::testing
