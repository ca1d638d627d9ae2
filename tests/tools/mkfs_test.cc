// SPDX-License-Identifier: BSD-3-Clause
// mkfs.pmemfs decides before it touches: every refused invocation leaves the region exactly
// as it was (size, allocated blocks, content, mode) and says why. Signatures of pmemfs
// (also damaged, also on a grown file), famfs and other filesystems are found through the
// mapping; the region's permissions are warned about.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "tools/tools_fixture.h"

namespace pmemfs::testing {
namespace {

class MkfsTest : public ::testing::Test {
 protected:
  std::string Mkfs(const std::string& args) { return Bin("mkfs.pmemfs") + " " + args; }
  // Runs `args` and expects a refusal whose message contains `why`, with nothing changed.
  void ExpectRefused(const std::string& args, const std::string& why, const std::string& path) {
    FileState before = StateOf(path);
    CommandResult r = Sh(Mkfs(args));
    EXPECT_NE(r.status, 0) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(why), std::string::npos) << args << ": expected '" << why << "' in\n" << r.output;
    EXPECT_EQ(StateOf(path), before) << args;
  }
  std::string R() const { return m_.region(); }
  PmemfsMount m_{64ull << 20};
};

TEST_F(MkfsTest, RefusalsOnAnExistingFilesystemChangeNothing) {
  ASSERT_EQ(m_.Mkfs().status, 0);
  // A file in it, so that a wrongly formatted region would also lose content.
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  ASSERT_TRUE(WriteFile(m_.Path("keep"), "precious"));
  ASSERT_EQ(m_.Unmount(), 0);
  ExpectRefused(R(), "holds a pmemfs", R());
  ExpectRefused("--size 128M " + R(), "holds a pmemfs", R());  // was: extended to 128M, then refused
  ExpectRefused("--size 128M --sparse " + R(), "holds a pmemfs", R());
  ExpectRefused("--size 32M " + R(), "cannot shrink", R());  // was: silently ignored
  ExpectRefused("-f --size 32M " + R(), "cannot shrink", R());
  ExpectRefused("-f --size 0 " + R(), "cannot shrink", R());
  ExpectRefused("-f -J 1 " + R(), "journal smaller than the minimum of 256 KiB", R());  // was: wiped, then failed
  ExpectRefused("-f -J 8K " + R(), "journal smaller than the minimum of 256 KiB", R());  // was: accepted
  ExpectRefused("-f -J 255K " + R(), "journal smaller than the minimum", R());
  ExpectRefused("-f -J 2G " + R(), "journal larger than the maximum", R());
  ExpectRefused("-f -J 63M " + R(), "too small for its metadata", R());
  ExpectRefused("-f -N 1 " + R(), "fewer inodes than the minimum of 64", R());  // was: nothing creatable
  ExpectRefused("-f -N 63 " + R(), "fewer inodes than the minimum", R());
  ExpectRefused("-f -N 10000000 " + R(), "too small for its metadata", R());
  ExpectRefused("-f -N 0 " + R(), "bad inode count", R());
  ExpectRefused("-f -J 0 " + R(), "bad journal size", R());
  ExpectRefused("-f --size 12Q " + R(), "bad size", R());
  ExpectRefused("-f -L " + std::string(64, 'l') + " " + R(), "label longer than 63 bytes", R());
  ExpectRefused("-f --sparse " + R(), "--sparse needs --size", R());
  // The boundaries themselves are accepted.
  ASSERT_EQ(Sh(Mkfs("-f -J 256K -N 64 " + R())).status, 0);
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  ExpectRefused("-f " + R(), "in use", R());  // mounted: never formatted, even with -f
  EXPECT_EQ(m_.Unmount(), 0);
}

TEST_F(MkfsTest, RefusalsOnANewPathCreateNothing) {
  const std::string fresh = m_.dir() + "/fresh";
  ExpectRefused("--size 1M " + fresh, "smaller than the minimum of 4 MiB", fresh);  // was: left a file
  CommandResult zero = Sh(Mkfs("--size 0 " + fresh));
  EXPECT_NE(zero.status, 0);
  EXPECT_NE(zero.output.find("smaller than the minimum of 4 MiB"), std::string::npos) << zero.output;
  EXPECT_EQ(zero.output.find("--sparse"), std::string::npos) << "advises --sparse, which fails too:\n" << zero.output;
  EXPECT_FALSE(StateOf(fresh).exists);
  ExpectRefused("--size 64M -J 8K " + fresh, "journal smaller", fresh);
  ExpectRefused("--size 64M -N 1 " + fresh, "fewer inodes", fresh);
  ExpectRefused(fresh, "does not exist", fresh);
  ExpectRefused("--size 64M " + m_.dir() + "/no/such/dir/region", "No such file", fresh);
}

TEST_F(MkfsTest, AnExistingPlainFileIsExtendedAndItsModeKept) {
  ASSERT_EQ(Sh("truncate -s 8M " + R() + " && chmod 640 " + R()).status, 0);
  CommandResult r = Sh(Mkfs("--size 64M " + R()));
  ASSERT_EQ(r.status, 0) << r.output;
  FileState s = StateOf(R());
  EXPECT_EQ(s.size, 64ull << 20);
  EXPECT_GE(s.blocks * 512, 64ull << 20) << "allocated";
  EXPECT_EQ(s.mode & 07777, 0640u);
}

TEST_F(MkfsTest, FindsADamagedPmemfsAndNeverAdvisesMkfs) {
  ASSERT_EQ(m_.Mkfs().status, 0);
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  ASSERT_TRUE(WriteFile(m_.Path("keep"), "precious"));
  ASSERT_EQ(m_.Unmount(), 0);  // leaves a checkpointed journal header: a signature of its own
  // The region file grows, then the primary and its copy in block 1 are wiped: the backup
  // is no longer in the device's last block.
  ASSERT_EQ(Sh("truncate -s 128M " + R()).status, 0);
  ASSERT_EQ(Sh("dd if=/dev/zero of=" + R() + " bs=4096 count=1 conv=notrunc status=none").status, 0);
  // The copy in block 1 is found first.
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_NE(m_.last_output().find("primary superblock damaged"), std::string::npos) << m_.last_output();
  EXPECT_EQ(ReadFile(m_.Path("keep")), "precious");
  ASSERT_EQ(m_.Unmount(), 0);
  ExpectRefused(R(), "holds a pmemfs", R());
  // Copy wiped too (its half of block 1): the damaged primary's backup offset is lost as well.
  ASSERT_EQ(Sh("dd if=/dev/zero of=" + R() + " bs=2048 seek=3 count=1 conv=notrunc status=none").status, 0);
  ExpectRefused(R(), "damaged pmemfs", R());
  EXPECT_FALSE(m_.Mount());
  EXPECT_EQ(m_.last_output().find("mkfs"), std::string::npos) << "advises mkfs on a damaged pmemfs:\n" << m_.last_output();
  EXPECT_NE(m_.last_output().find("fsck.pmemfs"), std::string::npos) << m_.last_output();
}

TEST_F(MkfsTest, BackupFoundWhereTheDamagedPrimaryNamesIt) {
  ASSERT_EQ(m_.Mkfs().status, 0);
  ASSERT_EQ(Sh("truncate -s 128M " + R()).status, 0);
  // Flip a byte of the label (checksum now wrong) and wipe the copy: only the backup at
  // 64M - 4K is left, and the primary still says where it is.
  ASSERT_EQ(Sh("printf 'X' | dd of=" + R() + " bs=1 seek=170 conv=notrunc status=none").status, 0);
  ASSERT_EQ(Sh("dd if=/dev/zero of=" + R() + " bs=2048 seek=3 count=1 conv=notrunc status=none").status, 0);
  CommandResult check = m_.Fsck("-n");
  EXPECT_EQ(check.status, 4) << check.output;
  EXPECT_NE(check.output.find("primary superblock"), std::string::npos) << check.output;
  CommandResult fix = m_.Fsck("-y");
  EXPECT_EQ(fix.status, 1) << fix.output;
  CommandResult again = m_.Fsck("-n");
  EXPECT_EQ(again.status, 0) << again.output;
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_EQ(m_.Unmount(), 0);
}

TEST_F(MkfsTest, FamfsAndOtherSignaturesAreRefusedWithoutForce) {
  ASSERT_EQ(Sh("truncate -s 64M " + R()).status, 0);
  // famfs: the superblock's 64-bit magic at offset 0 (famfs_meta.h FAMFS_SUPER_MAGIC).
  ASSERT_EQ(Sh("printf '\\377\\202\\262\\207\\0\\0\\0\\0' | dd of=" + R() + " conv=notrunc status=none").status, 0);
  ExpectRefused(R(), "famfs superblock", R());
  ASSERT_EQ(Sh("dd if=/dev/zero of=" + R() + " bs=8 count=1 conv=notrunc status=none").status, 0);
  // famfs's log at 2 MiB (FAMFS_LOG_MAGIC 0xbadcafef00d).
  ASSERT_EQ(Sh("printf '\\015\\360\\376\\312\\255\\013\\0\\0' | dd of=" + R() + " bs=1 seek=2097152 conv=notrunc status=none").status, 0);
  ExpectRefused(R(), "famfs log", R());
  EXPECT_EQ(Sh(Mkfs("-f " + R())).status, 0);
  if (Sh("command -v mkfs.ext4").status == 0) {
    ASSERT_EQ(Sh("mkfs.ext4 -q -F " + R()).status, 0);
    ExpectRefused(R(), "ext4", R());
    ExpectRefused("--size 128M " + R(), "ext4", R());
  }
}

TEST_F(MkfsTest, WarnsWhenOtherUsersCanOpenTheRegion) {
  ASSERT_EQ(Sh("truncate -s 64M " + R()).status, 0);
  auto warns = [&](const char* mode) {
    EXPECT_EQ(::chmod(R().c_str(), std::strtol(mode, nullptr, 8)), 0);
    CommandResult r = Sh(Mkfs("-f " + R()));
    EXPECT_EQ(r.status, 0) << r.output;
    return r.output;
  };
  EXPECT_NE(warns("0644").find("readable by every user (mode 0644)"), std::string::npos);
  EXPECT_NE(warns("0606").find("readable and writable by every user"), std::string::npos);
  EXPECT_NE(warns("0662").find("writable by every user"), std::string::npos);
  EXPECT_EQ(warns("0660").find("warning"), std::string::npos);
  EXPECT_EQ(warns("0600").find("warning"), std::string::npos);
  // The daemon logs it at mount.
  ASSERT_EQ(::chmod(R().c_str(), 0644), 0);
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_NE(m_.last_output().find("readable by every user"), std::string::npos) << m_.last_output();
  EXPECT_EQ(m_.Unmount(), 0);
  // A region mkfs creates is 0600.
  const std::string fresh = m_.dir() + "/fresh";
  CommandResult r = Sh(Mkfs("--size 64M --sparse " + fresh));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  EXPECT_EQ(StateOf(fresh).mode & 07777, 0600u);
}

}  // namespace
}  // namespace pmemfs::testing
