// SPDX-License-Identifier: BSD-3-Clause
// A daemon that survives its region (issue 15): the region file is truncated under a live
// mount. Requests that touch the lost part answer EIO (a store or load by the daemon takes
// SIGBUS, survived by src/pmem/fault.h; a read reply pointing there is refused by the
// kernel with EFAULT), the filesystem turns read-only with the reason logged, the daemon
// stays alive, and the unmount works.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {

class RegionFaultTest : public ::testing::Test {
 protected:
  PmemfsMount m_{64ull << 20};

  // 30 files of 1 MiB; returns the region offset of `name`'s first extent.
  uint64_t Fill() {
    for (int i = 0; i < 30; ++i) {
      std::string data(1 << 20, static_cast<char>('a' + i % 26));
      EXPECT_TRUE(WriteFile(m_.Path("f" + std::to_string(i)), data));
    }
    return 0;
  }
  uint64_t RegionOffset(const std::string& name) {
    char buf[4096];
    ssize_t n = ::getxattr(m_.Path(name).c_str(), "user.pmemfs.extents", buf, sizeof buf - 1);
    EXPECT_GT(n, 0);
    buf[std::max<ssize_t>(n, 0)] = '\0';
    unsigned long long logical = 0, region = 0;
    EXPECT_EQ(std::sscanf(buf, "%llu %llu", &logical, &region), 2) << buf;
    return region;
  }
  bool DaemonAlive() { return ::kill(m_.daemon_pid(), 0) == 0; }
  // pread of 4 KiB at 0 with the kernel's cached pages of the file dropped first, so that
  // the request reaches the daemon.
  int ReadErrno(const std::string& name) {
    int fd = ::open(m_.Path(name).c_str(), O_RDONLY);
    if (fd < 0) return errno;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    char buf[4096];
    ssize_t n = ::pread(fd, buf, sizeof buf, 0);
    int err = n < 0 ? errno : 0;
    ::close(fd);
    return err;
  }
  int OverwriteErrno(const std::string& name) {
    int fd = ::open(m_.Path(name).c_str(), O_WRONLY);
    if (fd < 0) return errno;
    std::string data(4096, 'Z');
    ssize_t n = ::pwrite(fd, data.data(), data.size(), 0);
    int err = n < 0 ? errno : 0;
    ::close(fd);
    return err;
  }
};

TEST_F(RegionFaultTest, StoreIntoATruncatedRegionAnswersEioAndTheFilesystemTurnsReadOnly) {
  ASSERT_TRUE(m_.MkfsAndMount()) << m_.last_output();
  Fill();
  const uint64_t cut = 16ull << 20;
  ASSERT_GT(RegionOffset("f25"), cut) << "the test needs data past the cut";
  ASSERT_LT(RegionOffset("f0") + (1 << 20), cut);
  ASSERT_EQ(::truncate(m_.region().c_str(), cut), 0);

  // The daemon stores into the lost part: SIGBUS, survived; the write answers EIO.
  EXPECT_EQ(OverwriteErrno("f25"), EIO);
  EXPECT_TRUE(DaemonAlive());
  // From now on the filesystem is read-only, whatever the request.
  EXPECT_EQ(OverwriteErrno("f0"), EROFS);
  EXPECT_ERRNO(EROFS, ::mkdir(m_.Path("d").c_str(), 0755));
  // Bytes in the lost part are never served as zeros; bytes before the cut still read.
  EXPECT_EQ(ReadErrno("f25"), EIO);
  EXPECT_EQ(ReadErrno("f26"), EIO);
  EXPECT_EQ(ReadErrno("f0"), 0);
  EXPECT_EQ(ReadFile(m_.Path("f0")), std::string(1 << 20, 'a'));
  EXPECT_TRUE(DaemonAlive());
  std::string log = m_.last_output();
  EXPECT_NE(log.find("the region file shrank to 16777216 bytes (SIGBUS BUS_ADRERR)"), std::string::npos) << log;
  EXPECT_NE(log.find("filesystem is now read-only"), std::string::npos) << log;
  EXPECT_EQ(m_.Unmount(), 0) << m_.last_output();
}

TEST_F(RegionFaultTest, ReadReplyFromATruncatedRegionAnswersEioWithoutHanging) {
  ASSERT_TRUE(m_.MkfsAndMount()) << m_.last_output();
  Fill();
  const uint64_t cut = 16ull << 20;
  ASSERT_GT(RegionOffset("f25"), cut);
  ASSERT_EQ(::truncate(m_.region().c_str(), cut), 0);
  // The daemon replies with iovecs into the region; the kernel cannot copy them (EFAULT)
  // and ends the request with EIO. Under `timeout`: a hang would fail the test, not block it.
  CommandResult r = Sh("timeout 20 dd if=" + m_.Path("f25") + " of=/dev/null bs=1M iflag=direct");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.status, 124) << "the read hung";
  EXPECT_NE(r.output.find("Input/output error"), std::string::npos) << r.output;
  EXPECT_TRUE(DaemonAlive());
  EXPECT_EQ(OverwriteErrno("f0"), EROFS);
  EXPECT_EQ(ReadErrno("f26"), EIO);
  EXPECT_EQ(ReadErrno("f1"), 0);
  std::string log = m_.last_output();
  EXPECT_NE(log.find("could not be copied from the region (EFAULT)"), std::string::npos) << log;
  EXPECT_EQ(m_.Unmount(), 0) << m_.last_output();
}

}  // namespace
}  // namespace pmemfs::testing
