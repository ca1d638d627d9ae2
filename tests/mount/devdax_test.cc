// SPDX-License-Identifier: BSD-3-Clause
// The device-dax emulation (PMEMFS_TEST_DEVDAX, src/common/devdax.h) through the real
// commands: what a device-dax refuses is refused, with the rule named and nothing changed,
// and the tools say which device they work on. The suites themselves run again under
// PMEMFS_TEST_DEVDAX=2M in scripts/test.sh; these tests set the variable per command.
#include <sys/stat.h>

#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {

const std::string kDevdax = "PMEMFS_TEST_DEVDAX=2M ";

class DevdaxEmulation : public ::testing::Test {
 protected:
  PmemfsMount m_{64ull << 20};
  std::string Mkfs(const std::string& args) { return kDevdax + Bin("mkfs.pmemfs") + " " + args; }
};

TEST_F(DevdaxEmulation, MkfsSizeIsRefusedAndTouchesNothing) {
  const std::string fresh = m_.dir() + "/fresh";
  CommandResult r = Sh(Mkfs("--size 32M " + fresh));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("supports only open, mmap and close"), std::string::npos) << r.output;
  EXPECT_NE(::access(fresh.c_str(), F_OK), 0) << "no file created";
  // An existing region keeps its size and bytes.
  ASSERT_EQ(Sh("head -c 4M /dev/urandom > " + m_.region()).status, 0);
  std::string before = ReadFile(m_.region());
  r = Sh(Mkfs("-f --size 32M " + m_.region()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("supports only open, mmap and close"), std::string::npos) << r.output;
  EXPECT_TRUE(ReadFile(m_.region()) == before) << "the region changed";
}

TEST_F(DevdaxEmulation, RegionsOffTheAlignmentAndPageGranularityAreRefused) {
  ASSERT_EQ(Sh("truncate -s 3M " + m_.region()).status, 0);
  CommandResult r = Sh(Mkfs("-f " + m_.region()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("multiples of the device alignment"), std::string::npos) << r.output;
  ASSERT_EQ(Sh("truncate -s 4M " + m_.region()).status, 0);
  r = Sh("PMEM2_FORCE_GRANULARITY=page " + Mkfs("-f " + m_.region()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("msync"), std::string::npos) << r.output;
  r = Sh("PMEMFS_TEST_DEVDAX=3M " + Bin("mkfs.pmemfs") + " -f " + m_.region());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("PMEMFS_TEST_DEVDAX"), std::string::npos) << r.output;
}

TEST_F(DevdaxEmulation, ToolsNameTheEmulatedDeviceAndTheDaemonUsesIt) {
  ASSERT_EQ(Sh("truncate -s 64M " + m_.region()).status, 0);
  CommandResult r = Sh(Mkfs("-f " + m_.region()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("emulating a devdax"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cache-line"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2097152-byte alignment"), std::string::npos) << r.output;
  r = Sh(kDevdax + Bin("fsck.pmemfs") + " -n " + m_.region());
  EXPECT_EQ(r.status, 0) << r.output;
  ::setenv("PMEMFS_TEST_DEVDAX", "2M", 1);  // for the daemon this fixture starts, and the check below
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  ASSERT_TRUE(WriteFile(m_.Path("f"), "x"));  // after the first request the mount is logged
  EXPECT_NE(m_.last_output().find("emulating a devdax"), std::string::npos) << m_.last_output();
  ASSERT_EQ(::setxattr(m_.Path("f").c_str(), "user.pmemfs.immutable_extents", "4K", 2, 0), 0);
  char v[16];
  ssize_t n = ::getxattr(m_.Path("f").c_str(), "user.pmemfs.immutable_extents", v, sizeof v);
  EXPECT_EQ(std::string(v, std::max<ssize_t>(n, 0)), "2M") << "raised to the region's alignment";
  EXPECT_EQ(ExpectFlaggedExtentsAligned(m_.mnt()), 1);
  EXPECT_EQ(m_.Unmount(), 0);
  ::unsetenv("PMEMFS_TEST_DEVDAX");
}

}  // namespace
}  // namespace pmemfs::testing
