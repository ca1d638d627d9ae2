// SPDX-License-Identifier: BSD-3-Clause
// Whole-filesystem lifecycles: remount keeps everything, 100,000 entries in one directory,
// one writer per region, clear messages for unformatted regions, mkfs signatures, ro, SIGTERM.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <random>

#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {

class RemountTest : public MountTest {};

// Writes a random tree (seeded), remounts, and compares every file's content and metadata.
TEST_F(RemountTest, RandomTreeSurvivesRemount) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::map<std::string, std::string> files;
  std::vector<std::string> dirs = {""};
  for (int i = 0; i < 400; ++i) {
    const std::string& parent = dirs[rng() % dirs.size()];
    std::string name = parent + (parent.empty() ? "" : "/") + "n" + std::to_string(i);
    if (rng() % 5 == 0) {
      ASSERT_EQ(::mkdir(P(name).c_str(), 0700 + rng() % 0100), 0) << name;
      dirs.push_back(name);
      continue;
    }
    size_t len = rng() % 4 == 0 ? rng() % (3 << 20) : rng() % 20000;
    std::string data(len, '\0');
    for (auto& c : data) c = char(rng());
    int fd = ::open(P(name).c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0) << name;
    off_t at = rng() % 3 == 0 ? off_t(rng() % (1 << 20)) : 0;  // some files start with a hole
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), at), (ssize_t)data.size());
    ::close(fd);
    files[name] = std::string(at, '\0') + data;
    if (rng() % 10 == 0) {
      ASSERT_EQ(::setxattr(P(name).c_str(), "user.k", name.data(), name.size(), 0), 0);
    }
  }
  ASSERT_EQ(::symlink("n0/target", P("sym").c_str()), 0);
  ASSERT_EQ(m_.Unmount(), 0) << m_.last_output();
  CommandResult fsck = m_.Fsck("-n");
  ASSERT_EQ(fsck.status, 0) << fsck.output;
  ASSERT_TRUE(m_.Mount()) << m_.last_output();

  for (const auto& [name, data] : files) {
    ASSERT_EQ(ReadFile(P(name)), data) << name;
    char buf[512];
    ssize_t n = ::getxattr(P(name).c_str(), "user.k", buf, sizeof buf);
    if (n >= 0) {
      EXPECT_EQ(std::string(buf, n), name);
    }
  }
  char buf[64];
  ASSERT_EQ(::readlink(P("sym").c_str(), buf, sizeof buf), 9);
  EXPECT_EQ(CommandResult(Sh("cd " + m_.mnt() + " && find . | wc -l")).output,
            std::to_string(files.size() + dirs.size() + 1) + "\n");
}

// 100,000 files in one directory: create, list exactly, look up, remount, list, remove all.
TEST_F(RemountTest, HundredThousandFilesInOneDirectory) {
  constexpr int kFiles = 100000;
  ASSERT_EQ(m_.Unmount(), 0);
  ASSERT_EQ(m_.Mkfs("-N 120000").status, 0);  // the default is one inode per 16 KiB
  ASSERT_TRUE(m_.Mount());
  ASSERT_EQ(::mkdir(P("big").c_str(), 0755), 0);
  for (int i = 0; i < kFiles; ++i) {
    int fd = ::open(P("big/file-" + std::to_string(i)).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << i << ": " << std::strerror(errno);
    ::close(fd);
  }
  auto list = [&] {
    std::vector<bool> seen(kFiles);
    int count = 0;
    DIR* d = ::opendir(P("big").c_str());
    EXPECT_NE(d, nullptr);
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      EXPECT_EQ(n.rfind("file-", 0), 0u) << n;
      int i = std::stoi(n.substr(5));
      EXPECT_FALSE(seen[i]) << n << " listed twice";
      seen[i] = true;
      ++count;
    }
    ::closedir(d);
    return count;
  };
  EXPECT_EQ(list(), kFiles);
  struct stat st;
  EXPECT_EQ(::stat(P("big/file-99999").c_str(), &st), 0);
  EXPECT_EQ(::stat(P("big/file-100000").c_str(), &st), -1);
  ASSERT_EQ(m_.Remount(), true) << m_.last_output();
  EXPECT_EQ(list(), kFiles);
  EXPECT_EQ(::stat(P("big/file-31337").c_str(), &st), 0);
  for (int i = 0; i < kFiles; ++i) ASSERT_EQ(::unlink(P("big/file-" + std::to_string(i)).c_str()), 0) << i;
  EXPECT_EQ(list(), 0);
  EXPECT_EQ(::rmdir(P("big").c_str()), 0);
}

TEST_F(RemountTest, SecondMountOfTheSameRegionIsRefused) {
  std::string mnt2 = m_.dir() + "/mnt2";
  ASSERT_EQ(::mkdir(mnt2.c_str(), 0755), 0);
  CommandResult r = Sh("timeout 20 " + Bin("pmemfs") + " " + m_.region() + " " + mnt2 + " -f");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
  EXPECT_FALSE(IsMounted(mnt2));
  // The first mount is unharmed.
  ASSERT_TRUE(WriteFile(P("still"), "fine"));
  EXPECT_EQ(ReadFile(P("still")), "fine");
}

TEST_F(RemountTest, ReadOnlyMountRefusesWrites) {
  ASSERT_TRUE(WriteFile(P("f"), "keep"));
  ASSERT_TRUE(m_.Remount("ro")) << m_.last_output();
  EXPECT_EQ(ReadFile(P("f")), "keep");
  errno = 0;
  EXPECT_EQ(::open(P("f").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::mkdir(P("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::unlink(P("f").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::setxattr(P("f").c_str(), "user.a", "1", 1, 0), -1);
  EXPECT_EQ(errno, EROFS);
}

TEST_F(RemountTest, SigtermUnmountsCleanly) {
  ASSERT_TRUE(WriteFile(P("f"), "before sigterm"));
  pid_t daemon = m_.daemon_pid();
  ASSERT_EQ(::kill(daemon, SIGTERM), 0);
  for (int i = 0; i < 500 && IsMounted(m_.mnt()); ++i) ::usleep(10000);
  EXPECT_FALSE(IsMounted(m_.mnt()));
  EXPECT_EQ(m_.Unmount(), 0) << m_.last_output();  // reaps the daemon: exit status 0
  CommandResult fsck = m_.Fsck("-n");
  EXPECT_EQ(fsck.status, 0) << fsck.output;
  ASSERT_TRUE(m_.Mount());
  EXPECT_EQ(ReadFile(P("f")), "before sigterm");
}

// Tests that format regions themselves.
class RegionTest : public ::testing::Test {
 protected:
  PmemfsMount m_{64ull << 20};
};

TEST_F(RegionTest, UnformattedRegionNamesMkfs) {
  ASSERT_EQ(Sh("truncate -s 64M " + m_.region()).status, 0);
  EXPECT_FALSE(m_.Mount());
  EXPECT_NE(m_.last_output().find("mkfs.pmemfs"), std::string::npos) << m_.last_output();
  CommandResult r = Sh(Bin("pmemfs") + " " + m_.dir() + "/missing " + m_.mnt() + " -f");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find(m_.dir() + "/missing does not exist"), std::string::npos) << r.output;
}

TEST_F(RegionTest, MkfsRefusesSignaturesWithoutForce) {
  ASSERT_EQ(m_.Mkfs().status, 0);
  CommandResult again = Sh(Bin("mkfs.pmemfs") + " " + m_.region());
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.output.find("-f"), std::string::npos) << again.output;
  EXPECT_EQ(Sh(Bin("mkfs.pmemfs") + " -f " + m_.region()).status, 0);
  if (Sh("command -v mkfs.ext4").status == 0) {
    ASSERT_EQ(Sh("mkfs.ext4 -q -F " + m_.region()).status, 0);
    CommandResult ext4 = Sh(Bin("mkfs.pmemfs") + " " + m_.region());
    EXPECT_NE(ext4.status, 0);
    EXPECT_NE(ext4.output.find("ext4"), std::string::npos) << ext4.output;
    ASSERT_EQ(Sh(Bin("mkfs.pmemfs") + " -f " + m_.region()).status, 0);
  }
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  EXPECT_TRUE(WriteFile(m_.Path("x"), "y"));
  EXPECT_EQ(m_.Unmount(), 0);
}

TEST_F(RegionTest, MkfsSizeAllocatesTheFileUnlessSparse) {
  if (EmulatedDevdaxAlign() != 0) GTEST_SKIP() << "a device-dax refuses --size (DevdaxEmulation.MkfsSizeIsRefused)";
  auto allocated = [&](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  const std::string dense = m_.dir() + "/dense", sparse = m_.dir() + "/sparse";
  ASSERT_EQ(Sh(Bin("mkfs.pmemfs") + " --size 32M " + dense).status, 0);
  EXPECT_GE(allocated(dense), 32ull << 20);
  ASSERT_EQ(Sh(Bin("mkfs.pmemfs") + " --size 32M --sparse " + sparse).status, 0);
  EXPECT_LT(allocated(sparse), 16ull << 20);
  EXPECT_NE(Sh(Bin("mkfs.pmemfs") + " --sparse " + sparse).status, 0) << "--sparse without --size";
  // A region that does not fit: refused at once, and the file it would have created is gone.
  const std::string small_fs = m_.dir() + "/small";
  ASSERT_EQ(Sh("mkdir -p " + small_fs + " && mount -t tmpfs -o size=8M tmpfs " + small_fs).status, 0);
  CommandResult r = Sh(Bin("mkfs.pmemfs") + " --size 64M " + small_fs + "/region");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--sparse"), std::string::npos) << r.output;
  EXPECT_NE(::access((small_fs + "/region").c_str(), F_OK), 0);
  Sh("umount " + small_fs);
  ::unlink(dense.c_str());
  ::unlink(sparse.c_str());
}

}  // namespace
}  // namespace pmemfs::testing
