// SPDX-License-Identifier: BSD-3-Clause
// fsck.pmemfs and the daemon on real region files: an aliased extent is refused by the
// mounted daemon and repaired by fsck; a listing with a damaged entry still works through
// the mount; fsck -y after an unclean shutdown leaves nothing for the next mount to replay;
// fsck -n of a read-only region changes nothing.
#include <dirent.h>
#include <sys/stat.h>

#include <cstring>

#include "extent/journal.h"
#include "extent/superblock.h"
#include "pmem/pmem2_region.h"
#include "robust/image_util.h"
#include "tools/tools_fixture.h"

namespace pmemfs::testing {
namespace {

class FsckCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(m_.MkfsAndMount()) << m_.last_output(); }
  // The region mapped by this test while the filesystem is not mounted.
  std::unique_ptr<pmem::Pmem2Region> Open() {
    auto r = pmem::Pmem2Region::Open(m_.region(), {.read_only = false, .lock = true});
    EXPECT_TRUE(r.ok()) << r.error().Message();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  uint64_t Ino(const std::string& rel) {
    struct stat st {};
    EXPECT_EQ(::stat(m_.Path(rel).c_str(), &st), 0) << rel;
    return st.st_ino;
  }
  PmemfsMount m_{64ull << 20};
};

TEST_F(FsckCommandTest, AliasedExtentIsRefusedByTheMountAndRepairedByFsck) {
  const std::string secret(16384, 's');
  ASSERT_TRUE(WriteFile(m_.Path("secret"), secret));
  ASSERT_TRUE(WriteFile(m_.Path("attacker"), std::string(16384, 'a')));
  const uint64_t a = Ino("secret"), b = Ino("attacker");
  ASSERT_EQ(m_.Unmount(), 0);
  {
    auto r = Open();
    ASSERT_TRUE(r);
    auto sb = extent::ReadSuperblock(*r)->sb;
    auto ea = ExtentsOf(*r, sb, a), eb = ExtentsOf(*r, sb, b);
    ASSERT_EQ(ea.size(), 1u);
    ASSERT_EQ(eb.size(), 1u);
    format::Extent e = eb[0].e;
    e.pblk = ea[0].e.pblk;  // the attacker's extent now names the secret's blocks
    std::memcpy(r->base() + eb[0].slot, &e, sizeof(e));
    extent::SealInode(*r->At<format::Inode>(extent::InodeOff(sb, b)));
    r->Persist(eb[0].slot, sizeof(e));
  }
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_EQ(ReadFile(m_.Path("secret")), secret);
  CommandResult cat = Sh("cat " + m_.Path("attacker"));
  EXPECT_NE(cat.status, 0);
  EXPECT_NE(cat.output.find("Structure needs cleaning"), std::string::npos) << cat.output;
  CommandResult map = Sh("getfattr --only-values -n user.pmemfs.extents " + m_.Path("attacker"));
  EXPECT_NE(map.status, 0) << map.output;
  ASSERT_EQ(m_.Unmount(), 0);
  EXPECT_NE(m_.last_output().find("owned by inode " + std::to_string(a)), std::string::npos) << m_.last_output();

  CommandResult check = m_.Fsck("-n");
  EXPECT_EQ(check.status, 4) << check.output;
  EXPECT_NE(check.output.find("also owned by inode " + std::to_string(a)), std::string::npos) << check.output;
  CommandResult fix = m_.Fsck("-y");
  EXPECT_EQ(fix.status, 1) << fix.output;
  CommandResult again = m_.Fsck("-n");
  EXPECT_EQ(again.status, 0) << again.output;
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_EQ(ReadFile(m_.Path("secret")), secret);
  EXPECT_EQ(ReadFile(m_.Path("attacker")), std::string(16384, '\0'));
  EXPECT_EQ(m_.Unmount(), 0);
}

TEST_F(FsckCommandTest, LsSkipsAnEntryNamingABadInode) {
  ASSERT_EQ(::mkdir(m_.Path("d").c_str(), 0755), 0);
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(WriteFile(m_.Path(std::string("d/") + n), n));
  const uint64_t d = Ino("d");
  ASSERT_EQ(m_.Unmount(), 0);
  {
    auto r = Open();
    ASSERT_TRUE(r);
    auto sb = extent::ReadSuperblock(*r)->sb;
    for (const DirSlot& s : EntriesOf(*r, sb, d)) {
      if (s.name != "b") continue;
      uint64_t bad = sb.inode_count + 1;
      std::memcpy(r->base() + s.off, &bad, 8);
      r->Persist(s.off, 8);
    }
  }
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  CommandResult ls = Sh("ls " + m_.Path("d"));
  EXPECT_EQ(ls.status, 0) << ls.output;  // was: "ls: reading directory: Stale file handle"
  EXPECT_EQ(ls.output, "a\nc\n");
  EXPECT_EQ(Sh("ls -l " + m_.Path("d") + " | wc -l").output, "3\n");
  ASSERT_EQ(m_.Unmount(), 0);
  EXPECT_NE(m_.last_output().find("entry 'b' names inode"), std::string::npos) << m_.last_output();
  EXPECT_EQ(m_.Fsck("-y").status, 1);
  EXPECT_EQ(m_.Fsck("-n").status, 0);
}

TEST_F(FsckCommandTest, RepairAfterAnUncleanShutdownLeavesNothingToReplay) {
  ASSERT_TRUE(WriteFile(m_.Path("f"), "synced"));
  m_.Kill();  // SIGKILL: the last transaction stays in the log
  {
    auto r = pmem::Pmem2Region::Open(m_.region(), {.read_only = true, .lock = true});
    ASSERT_TRUE(r.ok());
    auto sb = extent::ReadSuperblock(**r)->sb;
    ASSERT_FALSE(extent::Journal(**r, sb).Pending()->empty());
  }
  FileState before = StateOf(m_.region());
  CommandResult check = m_.Fsck("-n");
  EXPECT_EQ(check.status, 0) << check.output;
  EXPECT_NE(check.output.find("pending"), std::string::npos) << check.output;
  EXPECT_EQ(StateOf(m_.region()), before) << "fsck -n wrote";
  CommandResult fix = m_.Fsck("-y");
  EXPECT_EQ(fix.status, 0) << fix.output;
  {
    auto r = pmem::Pmem2Region::Open(m_.region(), {.read_only = true, .lock = true});
    ASSERT_TRUE(r.ok());
    auto sb = extent::ReadSuperblock(**r)->sb;
    EXPECT_TRUE(extent::Journal(**r, sb).Pending()->empty()) << "the next mount would replay it again";
  }
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_EQ(m_.last_output().find("replayed"), std::string::npos) << m_.last_output();
  EXPECT_EQ(ReadFile(m_.Path("f")), "synced");
  EXPECT_EQ(m_.Unmount(), 0);
}

TEST_F(FsckCommandTest, MountedRegionIsRefused) {
  CommandResult r = m_.Fsck("-n");
  EXPECT_EQ(r.status, 8);
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
  EXPECT_EQ(m_.Unmount(), 0);
}

}  // namespace
}  // namespace pmemfs::testing
