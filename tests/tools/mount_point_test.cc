// SPDX-License-Identifier: BSD-3-Clause
// pmemfs checks its mount point: missing, not a directory, a dead FUSE mount, or a mount
// already (refused unless -o overmount).
#include <sys/stat.h>
#include <unistd.h>

#include "tools/tools_fixture.h"

namespace pmemfs::testing {
namespace {

class MountPointTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(m_.Mkfs().status, 0); }
  CommandResult MountOn(const std::string& region, const std::string& mnt, const std::string& opts = "") {
    // -f: a mistaken success would stay in the foreground; the timeout ends it.
    return Sh("timeout 10 " + Bin("pmemfs") + " " + region + " " + mnt + " -f" + (opts.empty() ? "" : " -o " + opts));
  }
  PmemfsMount m_{64ull << 20};
};

TEST_F(MountPointTest, MissingOrNotADirectory) {
  CommandResult missing = MountOn(m_.region(), m_.dir() + "/nowhere");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("mount point " + m_.dir() + "/nowhere does not exist"), std::string::npos)
      << missing.output;
  CommandResult file = MountOn(m_.region(), m_.region());
  EXPECT_EQ(file.status, 1);
  EXPECT_NE(file.output.find("is not a directory"), std::string::npos) << file.output;
}

TEST_F(MountPointTest, AMountIsNotStackedOnSilently) {
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  PmemfsMount other{64ull << 20};
  ASSERT_EQ(other.Mkfs().status, 0);
  CommandResult r = MountOn(other.region(), m_.mnt());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("is already a mount (fuse.pmemfs from " + m_.region() + ")"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("-o overmount"), std::string::npos) << r.output;
  // Still the first filesystem, once.
  ASSERT_TRUE(WriteFile(m_.Path("first"), "1"));
  EXPECT_EQ(Sh("grep -c ' " + m_.mnt() + " ' /proc/self/mountinfo").output, "1\n");
  // Opt-in stacking works, and unmounting it uncovers the first.
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    std::string bin = Bin("pmemfs");
    ::execl(bin.c_str(), bin.c_str(), other.region().c_str(), m_.mnt().c_str(), "-f", "-o", "overmount", nullptr);
    ::_exit(127);
  }
  bool stacked = false;
  for (int i = 0; i < 500 && !stacked; ++i) {
    stacked = Sh("grep -c ' " + m_.mnt() + " ' /proc/self/mountinfo").output == "2\n";
    if (!stacked) ::usleep(10000);
  }
  EXPECT_TRUE(stacked);
  struct stat st;
  EXPECT_NE(::stat(m_.Path("first").c_str(), &st), 0) << "the second filesystem covers the first";
  EXPECT_EQ(Sh("fusermount3 -u " + m_.mnt()).status, 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(ReadFile(m_.Path("first")), "1");
  EXPECT_EQ(m_.Unmount(), 0);
}

TEST_F(MountPointTest, ADeadFuseMountIsNamed) {
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  pid_t daemon = m_.daemon_pid();
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  struct stat st;
  for (int i = 0; i < 500 && !(::stat(m_.mnt().c_str(), &st) != 0 && errno == ENOTCONN); ++i) ::usleep(10000);
  ASSERT_EQ(::stat(m_.mnt().c_str(), &st), -1);
  ASSERT_EQ(errno, ENOTCONN);
  CommandResult r = MountOn(m_.region(), m_.mnt());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("dead FUSE mount (Transport endpoint is not connected)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("fusermount3 -u " + m_.mnt()), std::string::npos) << r.output;
  m_.Kill();  // reaps the daemon and detaches the dead mount
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_EQ(m_.Unmount(), 0);
}

}  // namespace
}  // namespace pmemfs::testing
