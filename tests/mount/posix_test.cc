// SPDX-License-Identifier: BSD-3-Clause
// POSIX operations on a real mount, with the errno values Linux filesystems (ext4, tmpfs)
// return for the same calls.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {


class PosixTest : public MountTest {
 protected:
  int Open(const std::string& rel, int flags, mode_t mode = 0644) {
    int fd = ::open(P(rel).c_str(), flags, mode);
    EXPECT_GE(fd, 0) << rel << ": " << std::strerror(errno);
    return fd;
  }
  struct stat Stat(const std::string& rel) {
    struct stat st{};
    EXPECT_EQ(::lstat(P(rel).c_str(), &st), 0) << rel << ": " << std::strerror(errno);
    return st;
  }
  uint64_t FreeBlocks() {
    struct statvfs sv{};
    EXPECT_EQ(::statvfs(m_.mnt().c_str(), &sv), 0);
    return sv.f_bfree;
  }
  std::set<std::string> List(const std::string& rel) {
    std::set<std::string> names;
    DIR* d = ::opendir(P(rel).c_str());
    EXPECT_NE(d, nullptr);
    if (d == nullptr) return names;
    while (dirent* e = ::readdir(d)) names.insert(e->d_name);
    ::closedir(d);
    return names;
  }
};

TEST_F(PosixTest, CreateOpenFlags) {
  int fd = Open("f", O_CREAT | O_EXCL | O_WRONLY);
  ASSERT_EQ(::write(fd, "hello world", 11), 11);
  ::close(fd);
  EXPECT_ERRNO(EEXIST, ::open(P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  EXPECT_ERRNO(ENOENT, ::open(P("missing").c_str(), O_RDONLY));
  EXPECT_ERRNO(ENOTDIR, ::open(P("f/x").c_str(), O_RDONLY));
  EXPECT_ERRNO(EISDIR, ::open(m_.mnt().c_str(), O_WRONLY));

  fd = Open("f", O_WRONLY | O_APPEND);
  ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  ASSERT_EQ(::write(fd, "!", 1), 1);  // O_APPEND ignores the offset
  ::close(fd);
  EXPECT_EQ(ReadFile(P("f")), "hello world!");

  fd = Open("f", O_WRONLY | O_TRUNC);
  EXPECT_EQ(Stat("f").st_size, 0);
  ::close(fd);
  EXPECT_ERRNO(ENAMETOOLONG, ::open(P(std::string(256, 'n')).c_str(), O_CREAT | O_WRONLY, 0644));
  fd = Open(std::string(255, 'n'), O_CREAT | O_WRONLY);  // NAME_MAX itself is fine
  ::close(fd);
}

TEST_F(PosixTest, PreadPwriteAndSparseFiles) {
  int fd = Open("sparse", O_CREAT | O_RDWR);
  const std::string tail = "tail-bytes";
  const off_t far = (64ll << 20) + 123;  // far beyond the first blocks, unaligned
  ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), far), (ssize_t)tail.size());
  ASSERT_EQ(::pwrite(fd, "head", 4, 1), 4);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, far + (off_t)tail.size());
  EXPECT_LE(st.st_blocks, 16) << "holes must take no space";  // two 4 KiB blocks

  char buf[8192];
  ASSERT_EQ(::pread(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
  EXPECT_EQ(buf[0], 0);
  EXPECT_EQ(std::string(buf + 1, 4), "head");
  EXPECT_TRUE(std::all_of(buf + 5, buf + sizeof buf, [](char c) { return c == 0; }));
  ASSERT_EQ(::pread(fd, buf, sizeof buf, 32 << 20), (ssize_t)sizeof buf);  // inside the hole
  EXPECT_TRUE(std::all_of(buf, buf + sizeof buf, [](char c) { return c == 0; }));
  ASSERT_EQ(::pread(fd, buf, 100, far), (ssize_t)tail.size());  // short read at EOF
  EXPECT_EQ(std::string(buf, tail.size()), tail);
  EXPECT_EQ(::pread(fd, buf, 100, far + 1000), 0);
  EXPECT_EQ(::fsync(fd), 0);
  EXPECT_EQ(::fdatasync(fd), 0);
  ::close(fd);
}

TEST_F(PosixTest, SetattrModeOwnerTimesSize) {
  int fd = Open("f", O_CREAT | O_RDWR);
  ASSERT_EQ(::write(fd, "0123456789", 10), 10);
  ASSERT_EQ(::chmod(P("f").c_str(), 0640), 0);
  EXPECT_EQ(Stat("f").st_mode & 07777, 0640u);
  ASSERT_EQ(::chown(P("f").c_str(), 1234, 5678), 0);
  EXPECT_EQ(Stat("f").st_uid, 1234u);
  EXPECT_EQ(Stat("f").st_gid, 5678u);

  timespec times[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, P("f").c_str(), times, 0), 0);
  struct stat st = Stat("f");
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);

  ASSERT_EQ(::ftruncate(fd, 4), 0);
  EXPECT_EQ(ReadFile(P("f")), "0123");
  ASSERT_EQ(::truncate(P("f").c_str(), 9000), 0);
  std::string grown = ReadFile(P("f"));
  ASSERT_EQ(grown.size(), 9000u);
  EXPECT_EQ(grown.substr(0, 4), "0123");
  EXPECT_EQ(grown.find_first_not_of('\0', 4), std::string::npos) << "truncate up must read zeros";
  EXPECT_ERRNO(EINVAL, ::ftruncate(fd, -1));
  ::close(fd);
}

TEST_F(PosixTest, SpecialFilesAndSymlinks) {
  ASSERT_EQ(::mkfifo(P("fifo").c_str(), 0600), 0);
  EXPECT_TRUE(S_ISFIFO(Stat("fifo").st_mode));
  ASSERT_EQ(::mknod(P("sock").c_str(), S_IFSOCK | 0600, 0), 0);
  EXPECT_TRUE(S_ISSOCK(Stat("sock").st_mode));
  ASSERT_EQ(::mknod(P("reg").c_str(), S_IFREG | 0600, 0), 0);
  EXPECT_TRUE(S_ISREG(Stat("reg").st_mode));

  ASSERT_EQ(::symlink("some/where/else", P("link").c_str()), 0);
  char buf[256];
  ssize_t n = ::readlink(P("link").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 15);
  EXPECT_EQ(std::string(buf, n), "some/where/else");
  EXPECT_TRUE(S_ISLNK(Stat("link").st_mode));
  EXPECT_EQ(Stat("link").st_size, 15);
  EXPECT_ERRNO(EINVAL, ::readlink(P("reg").c_str(), buf, sizeof buf));
  EXPECT_ERRNO(EEXIST, ::symlink("x", P("link").c_str()));
  // A symlink to a file in the mount resolves through the mount.
  ASSERT_TRUE(WriteFile(P("target"), "via link"));
  ASSERT_EQ(::symlink("target", P("rel").c_str()), 0);
  EXPECT_EQ(ReadFile(P("rel")), "via link");
}

TEST_F(PosixTest, DirectoriesAndRmdir) {
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  EXPECT_ERRNO(EEXIST, ::mkdir(P("d").c_str(), 0755));
  EXPECT_EQ(Stat("d").st_nlink, 2u);
  ASSERT_EQ(::mkdir(P("d/sub").c_str(), 0755), 0);
  EXPECT_EQ(Stat("d").st_nlink, 3u);
  ASSERT_TRUE(WriteFile(P("d/file"), "x"));
  EXPECT_ERRNO(ENOTEMPTY, ::rmdir(P("d").c_str()));
  EXPECT_ERRNO(ENOTDIR, ::rmdir(P("d/file").c_str()));
  EXPECT_ERRNO(EISDIR, ::unlink(P("d/sub").c_str()));
  EXPECT_ERRNO(ENOENT, ::rmdir(P("d/none").c_str()));
  EXPECT_EQ(List("d"), (std::set<std::string>{".", "..", "sub", "file"}));
  ASSERT_EQ(::rmdir(P("d/sub").c_str()), 0);
  ASSERT_EQ(::unlink(P("d/file").c_str()), 0);
  EXPECT_EQ(Stat("d").st_nlink, 2u);
  ASSERT_EQ(::rmdir(P("d").c_str()), 0);
  EXPECT_ERRNO(ENOENT, ::access(P("d").c_str(), F_OK));
}

TEST_F(PosixTest, UnlinkOfOpenFileFreesSpaceOnLastClose) {
  ASSERT_TRUE(WriteFile(P("other"), ""));  // the root's first directory block stays
  uint64_t before = FreeBlocks();
  int fd = Open("big", O_CREAT | O_RDWR);
  std::string chunk(1 << 20, 'z');
  for (int i = 0; i < 8; ++i) ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), (ssize_t)chunk.size());
  uint64_t written = FreeBlocks();
  EXPECT_LE(written + 2048, before);  // 8 MiB = 2048 blocks of 4 KiB
  ASSERT_EQ(::unlink(P("big").c_str()), 0);
  EXPECT_ERRNO(ENOENT, ::access(P("big").c_str(), F_OK));
  EXPECT_LE(FreeBlocks(), written + 16) << "space of an open unlinked file must stay in use";
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, 5 << 20), 1);  // still readable through the handle
  EXPECT_EQ(c, 'z');
  ::close(fd);
  // The release reaches the daemon asynchronously; poll the free count briefly.
  for (int i = 0; i < 200 && FreeBlocks() < before; ++i) ::usleep(10000);
  EXPECT_EQ(FreeBlocks(), before);
}

TEST_F(PosixTest, RenameVariants) {
  ASSERT_TRUE(WriteFile(P("a"), "A"));
  ASSERT_TRUE(WriteFile(P("b"), "B"));
  ASSERT_EQ(::mkdir(P("d1").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(P("d2").c_str(), 0755), 0);

  EXPECT_ERRNO(EEXIST, ::renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("b").c_str(), RENAME_NOREPLACE));
  ASSERT_EQ(::renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("b").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadFile(P("a")), "B");
  EXPECT_EQ(ReadFile(P("b")), "A");
  EXPECT_ERRNO(ENOENT, ::renameat2(AT_FDCWD, P("a").c_str(), AT_FDCWD, P("zz").c_str(), RENAME_EXCHANGE));

  ASSERT_EQ(::rename(P("a").c_str(), P("b").c_str()), 0);  // over an existing file
  EXPECT_EQ(ReadFile(P("b")), "B");
  EXPECT_ERRNO(ENOENT, ::access(P("a").c_str(), F_OK));

  ASSERT_EQ(::rename(P("b").c_str(), P("d1/b").c_str()), 0);  // across directories
  EXPECT_EQ(ReadFile(P("d1/b")), "B");
  ASSERT_EQ(::rename(P("d1").c_str(), P("d2/d1").c_str()), 0);  // directory move
  EXPECT_EQ(ReadFile(P("d2/d1/b")), "B");
  EXPECT_EQ(Stat("d2").st_nlink, 3u);
  EXPECT_EQ(Stat("").st_nlink, 3u);  // root: ., .., d2
  struct stat parent = Stat("d2"), dotdot = Stat("d2/d1/..");
  EXPECT_EQ(parent.st_ino, dotdot.st_ino);

  EXPECT_ERRNO(EINVAL, ::rename(P("d2").c_str(), P("d2/d1/inside").c_str()));
  ASSERT_EQ(::mkdir(P("empty").c_str(), 0755), 0);
  EXPECT_ERRNO(ENOTEMPTY, ::rename(P("empty").c_str(), P("d2").c_str()));
  ASSERT_TRUE(WriteFile(P("file"), "f"));
  EXPECT_ERRNO(EISDIR, ::rename(P("file").c_str(), P("empty").c_str()));
  EXPECT_ERRNO(ENOTDIR, ::rename(P("empty").c_str(), P("file").c_str()));
  ASSERT_EQ(::mkdir(P("empty2").c_str(), 0755), 0);
  ASSERT_EQ(::rename(P("empty").c_str(), P("empty2").c_str()), 0);  // over an empty dir
  EXPECT_EQ(List(""), (std::set<std::string>{".", "..", "d2", "file", "empty2"}));
}

TEST_F(PosixTest, HardLinks) {
  ASSERT_TRUE(WriteFile(P("f"), "data"));
  ASSERT_EQ(::link(P("f").c_str(), P("g").c_str()), 0);
  EXPECT_EQ(Stat("f").st_nlink, 2u);
  EXPECT_EQ(Stat("f").st_ino, Stat("g").st_ino);
  EXPECT_ERRNO(EEXIST, ::link(P("f").c_str(), P("g").c_str()));
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  EXPECT_ERRNO(EPERM, ::link(P("d").c_str(), P("dlink").c_str()));
  ASSERT_EQ(::unlink(P("f").c_str()), 0);
  EXPECT_EQ(Stat("g").st_nlink, 1u);
  EXPECT_EQ(ReadFile(P("g")), "data");
}

// Entries that stay in a directory are returned exactly once by a readdir that runs while
// other entries are created and removed, and telldir/seekdir cookies stay valid.
TEST_F(PosixTest, ReaddirOffsetsStableUnderChange) {
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(WriteFile(P("d/keep" + std::to_string(i)), ""));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(WriteFile(P("d/drop" + std::to_string(i)), ""));
  DIR* d = ::opendir(P("d").c_str());
  ASSERT_NE(d, nullptr);
  std::map<std::string, int> seen;
  int n = 0;
  long cookie = -1;
  std::string at_cookie;
  while (dirent* e = ::readdir(d)) {
    seen[e->d_name]++;
    if (++n == 100) {
      for (int i = 0; i < 300; ++i) ::unlink(P("d/drop" + std::to_string(i)).c_str());
      for (int i = 0; i < 300; ++i) WriteFile(P("d/new" + std::to_string(i)), "");
      cookie = ::telldir(d);
    }
  }
  for (int i = 0; i < 300; ++i) EXPECT_EQ(seen["keep" + std::to_string(i)], 1) << "keep" << i;
  for (const auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;
  // seekdir back to a cookie taken mid-stream resumes there.
  ASSERT_GE(cookie, 0);
  ::seekdir(d, cookie);
  std::set<std::string> after;
  while (dirent* e = ::readdir(d)) after.insert(e->d_name);
  ::closedir(d);
  std::set<std::string> all = List("d");
  for (const auto& name : after) EXPECT_TRUE(all.count(name)) << name;
  EXPECT_FALSE(after.empty());
}

TEST_F(PosixTest, StatfsCountsTrueBlocks) {
  struct statvfs a{}, b{};
  ASSERT_TRUE(WriteFile(P("one-mib"), ""));  // allocates the root's first directory block
  ASSERT_EQ(::statvfs(m_.mnt().c_str(), &a), 0);
  EXPECT_EQ(a.f_bsize, 4096u);
  EXPECT_GT(a.f_blocks, a.f_bfree);
  EXPECT_GT(a.f_files, a.f_ffree);
  EXPECT_EQ(a.f_namemax, 255u);
  std::string mib(1 << 20, 'q');
  ASSERT_TRUE(WriteFile(P("one-mib"), mib));
  ASSERT_EQ(::statvfs(m_.mnt().c_str(), &b), 0);
  EXPECT_EQ(a.f_bfree - b.f_bfree, 256u);  // exactly the data blocks: metadata is preallocated
  EXPECT_EQ(a.f_ffree, b.f_ffree);
  EXPECT_EQ(Stat("one-mib").st_blocks, 2048);  // 512-byte units
}

TEST_F(PosixTest, Xattrs) {
  ASSERT_TRUE(WriteFile(P("f"), ""));
  const std::string f = P("f");
  EXPECT_ERRNO(ENODATA, ::getxattr(f.c_str(), "user.a", nullptr, 0));
  EXPECT_ERRNO(ENODATA, ::setxattr(f.c_str(), "user.a", "1", 1, XATTR_REPLACE));
  ASSERT_EQ(::setxattr(f.c_str(), "user.a", "value-a", 7, XATTR_CREATE), 0);
  EXPECT_ERRNO(EEXIST, ::setxattr(f.c_str(), "user.a", "x", 1, XATTR_CREATE));
  ASSERT_EQ(::setxattr(f.c_str(), "user.a", "longer-value-a", 14, XATTR_REPLACE), 0);
  ASSERT_EQ(::setxattr(f.c_str(), "user.b", "", 0, 0), 0);  // empty values are legal
  char buf[256];
  ASSERT_EQ(::getxattr(f.c_str(), "user.a", buf, sizeof buf), 14);
  EXPECT_EQ(std::string(buf, 14), "longer-value-a");
  EXPECT_EQ(::getxattr(f.c_str(), "user.a", nullptr, 0), 14);  // size query
  EXPECT_ERRNO(ERANGE, ::getxattr(f.c_str(), "user.a", buf, 3));
  EXPECT_EQ(::getxattr(f.c_str(), "user.b", buf, sizeof buf), 0);

  ssize_t n = ::listxattr(f.c_str(), buf, sizeof buf);
  ASSERT_GT(n, 0);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += std::strlen(buf + i) + 1) names.insert(buf + i);
  EXPECT_TRUE(names.count("user.a"));
  EXPECT_TRUE(names.count("user.b"));

  ASSERT_EQ(::removexattr(f.c_str(), "user.a"), 0);
  EXPECT_ERRNO(ENODATA, ::removexattr(f.c_str(), "user.a"));
  EXPECT_ERRNO(ENODATA, ::getxattr(f.c_str(), "user.a", buf, sizeof buf));
  EXPECT_ERRNO(EOPNOTSUPP, ::setxattr(f.c_str(), "nonsense.a", "1", 1, 0));
  EXPECT_ERRNO(ERANGE, ::setxattr(f.c_str(), std::string("user." + std::string(300, 'n')).c_str(), "1", 1, 0));
  // The bare namespace prefix is an invalid name (tmpfs: EINVAL), any other namespace is
  // unsupported.
  for (const char* bare : {"user.", "trusted.", "security."}) {
    EXPECT_ERRNO(EINVAL, ::setxattr(f.c_str(), bare, "1", 1, 0));
    EXPECT_ERRNO(EINVAL, ::getxattr(f.c_str(), bare, buf, sizeof buf));
    EXPECT_ERRNO(EINVAL, ::removexattr(f.c_str(), bare));
  }
  // Values up to XATTR_SIZE_MAX (64 KiB), several per file, as on tmpfs and XFS.
  std::string huge(70000, 'v');
  EXPECT_ERRNO(E2BIG, ::setxattr(f.c_str(), "user.huge", huge.data(), huge.size(), 0));
  for (size_t len : {4000, 4096, 65536}) {
    std::string name = "user.v" + std::to_string(len), value(len, char('a' + len % 26));
    ASSERT_EQ(::setxattr(f.c_str(), name.c_str(), value.data(), value.size(), 0), 0) << len << std::strerror(errno);
    std::string back(len, '\0');
    ASSERT_EQ(::getxattr(f.c_str(), name.c_str(), back.data(), back.size()), (ssize_t)len);
    EXPECT_EQ(back, value);
  }
  for (int i = 0; i < 300; ++i) {
    std::string name = "user.many" + std::to_string(i);
    ASSERT_EQ(::setxattr(f.c_str(), name.c_str(), "0123456789", 10, 0), 0) << i << ": " << std::strerror(errno);
  }
}

TEST_F(PosixTest, FallocateModes) {
  int fd = Open("f", O_CREAT | O_RDWR);
  ASSERT_EQ(::fallocate(fd, 0, 0, 1 << 20), 0);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_EQ(st.st_blocks, 2048);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_EQ(st.st_blocks, 4096);

  std::string ones(1 << 20, '1');
  ASSERT_EQ(::pwrite(fd, ones.data(), ones.size(), 0), (ssize_t)ones.size());
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_blocks, 4096 - 16);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_ZERO_RANGE, 100000, 5000), 0);
  std::string got = ReadFile(P("f"));
  ASSERT_EQ(got.size(), 1u << 20);
  for (size_t i : {size_t(0), size_t(4095), size_t(12288), size_t(99999), size_t(105000)})
    EXPECT_EQ(got[i], '1') << i;
  for (size_t i : {size_t(4096), size_t(12287), size_t(100000), size_t(104999)})
    EXPECT_EQ(got[i], '\0') << i;
  EXPECT_ERRNO(EOPNOTSUPP, ::fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096));  // needs KEEP_SIZE
  EXPECT_ERRNO(EINVAL, ::fallocate(fd, 0, 0, 0));
  ::close(fd);
}

TEST_F(PosixTest, SeekDataAndHole) {
  int fd = Open("f", O_CREAT | O_RDWR);
  ASSERT_EQ(::pwrite(fd, "x", 1, 1 << 20), 1);
  ASSERT_EQ(::pwrite(fd, "y", 1, 3 << 20), 1);
  EXPECT_EQ(::lseek(fd, 0, SEEK_DATA), 1 << 20);
  EXPECT_EQ(::lseek(fd, 1 << 20, SEEK_HOLE), (1 << 20) + 4096);
  EXPECT_EQ(::lseek(fd, (1 << 20) + 4096, SEEK_DATA), 3 << 20);
  EXPECT_EQ(::lseek(fd, 3 << 20, SEEK_HOLE), (3 << 20) + 1);  // EOF is a hole
  EXPECT_ERRNO(ENXIO, ::lseek(fd, (3 << 20) + 1, SEEK_DATA));
  EXPECT_ERRNO(ENXIO, ::lseek(fd, 10 << 20, SEEK_HOLE));
  ::close(fd);
}

TEST_F(PosixTest, CopyFileRange) {
  std::string src_data(300000, '\0');
  for (size_t i = 0; i < src_data.size(); ++i) src_data[i] = char('a' + i % 23);
  ASSERT_TRUE(WriteFile(P("src"), src_data));
  int in = Open("src", O_RDONLY), out = Open("dst", O_CREAT | O_WRONLY);
  loff_t in_off = 1000, out_off = 5;
  ssize_t left = 200000;
  while (left > 0) {
    ssize_t n = ::copy_file_range(in, &in_off, out, &out_off, left, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    left -= n;
  }
  ::close(in);
  ::close(out);
  std::string dst = ReadFile(P("dst"));
  ASSERT_EQ(dst.size(), 200005u);
  EXPECT_EQ(dst.substr(0, 5), std::string(5, '\0'));
  EXPECT_EQ(dst.substr(5), src_data.substr(1000, 200000));
}

TEST_F(PosixTest, Access) {
  ASSERT_TRUE(WriteFile(P("f"), ""));
  ASSERT_EQ(::chmod(P("f").c_str(), 0444), 0);
  EXPECT_EQ(::access(P("f").c_str(), R_OK), 0);
  EXPECT_EQ(::access(P("f").c_str(), W_OK), 0);  // root
  EXPECT_ERRNO(EACCES, ::access(P("f").c_str(), X_OK));
  EXPECT_ERRNO(ENOENT, ::access(P("g").c_str(), F_OK));
  // An unprivileged user is refused by default_permissions (the mount is not allow_other,
  // so the kernel refuses it before permissions: EACCES either way).
  CommandResult r = Sh("setpriv --reuid=65534 --regid=65534 --clear-groups cat " + P("f"));
  EXPECT_NE(r.status, 0) << r.output;
}

// Clearing of privileges on change, as the kernel's VFS does it for local filesystems; pmemfs
// does it in the daemon (the kernel leaves it there, see fuse_ops.cc) and the kernel's cached
// mode must follow at once.
class PrivilegeTest : public PosixTest {
 protected:
  std::string MountOptions() const override { return "allow_other"; }
  static std::string AsNobody(const std::string& cmd) {
    return "setpriv --reuid=65534 --regid=65534 --clear-groups " + cmd;
  }
  mode_t Mode(const std::string& rel) { return Stat(rel).st_mode & 07777; }
  void SetMode(const std::string& rel, mode_t mode) { ASSERT_EQ(::chmod(P(rel).c_str(), mode), 0); }
};

TEST_F(PrivilegeTest, UnprivilegedChangesClearSetuidAndGroupExecutableSetgid) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  SetMode("f", 06777);
  Ok(AsNobody("sh -c 'echo more >> f'"));
  EXPECT_EQ(Mode("f"), 0777u) << "write";
  SetMode("f", 06777);
  Ok(AsNobody("truncate -s 1 f"));
  EXPECT_EQ(Mode("f"), 0777u) << "truncate";
  SetMode("f", 06777);
  Ok(AsNobody("sh -c ': > f'"));
  EXPECT_EQ(Mode("f"), 0777u) << "open with O_TRUNC";
  SetMode("f", 06777);
  Ok(AsNobody("fallocate -l 65536 f"));
  EXPECT_EQ(Mode("f"), 0777u) << "fallocate";
  // Set-group-ID without group execute (mandatory locking) goes only when the writer is
  // not in the file's group (tmpfs on Linux 6.x: setattr_should_drop_sgid()).
  SetMode("f", 06767);
  Ok(AsNobody("sh -c 'echo more >> f'"));
  EXPECT_EQ(Mode("f"), 0767u) << "write by a non-member, setgid without group execute";
  ASSERT_EQ(::chown(P("f").c_str(), 0, 100), 0);
  SetMode("f", 06767);
  Ok("setpriv --reuid=65534 --regid=65534 --groups=100 sh -c 'echo more >> f'");
  EXPECT_EQ(Mode("f"), 02767u) << "write by a member through a supplementary group";
  ASSERT_EQ(::chown(P("f").c_str(), 0, 65534), 0);
  SetMode("f", 06767);
  Ok(AsNobody("sh -c 'echo more >> f'"));
  EXPECT_EQ(Mode("f"), 02767u) << "write by a member through its own group";
}

// chown clears set-user-ID (and group-executable set-group-ID) on every non-directory, as
// tmpfs does: fifos, sockets and device nodes too.
TEST_F(PrivilegeTest, ChownClearsSetIdOnEveryNonDirectory) {
  ASSERT_EQ(::mkfifo(P("p").c_str(), 0600), 0);
  ASSERT_EQ(::mknod(P("c").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  for (const char* n : {"p", "c", "d"}) ASSERT_EQ(::chown(P(n).c_str(), 65534, 65534), 0);
  SetMode("p", 06555);
  Ok(AsNobody("chown 65534:65534 p"));
  EXPECT_EQ(Mode("p"), 0555u) << "chown of a fifo by its owner";
  SetMode("p", 06545);
  Ok(AsNobody("chown 65534:65534 p"));
  EXPECT_EQ(Mode("p"), 02545u) << "setgid without group execute, owner in the group: kept";
  ASSERT_EQ(::chown(P("p").c_str(), 65534, 0), 0);
  SetMode("p", 02545);
  Ok(AsNobody("chown 65534:65534 p"));
  EXPECT_EQ(Mode("p"), 0545u) << "setgid without group execute, owner not in the old group: "
                                 "cleared although the new group is the owner's";
  SetMode("c", 06755);
  ASSERT_EQ(::chown(P("c").c_str(), 0, 0), 0);
  EXPECT_EQ(Mode("c"), 0755u) << "chown of a device node by root";
  SetMode("c", 06745);
  ASSERT_EQ(::chown(P("c").c_str(), 0, 5), 0);
  EXPECT_EQ(Mode("c"), 02745u) << "root keeps setgid without group execute (CAP_FSETID)";
  SetMode("d", 06755);
  ASSERT_EQ(::chown(P("d").c_str(), 0, 0), 0);
  EXPECT_EQ(Mode("d"), 06755u) << "directories keep both";
}

// Capabilities held only inside a user namespace (`unshare -r`) count for nothing on a
// mount owned by the initial namespace: a write or truncate by such a "root" still clears
// set-user-ID, as on tmpfs.
TEST_F(PrivilegeTest, CapabilitiesOfAChildUserNamespaceDoNotCount) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  SetMode("f", 04777);
  Ok(AsNobody("unshare -r sh -c 'echo more >> f'"));
  EXPECT_EQ(Mode("f"), 0777u) << "write";
  SetMode("f", 04777);
  Ok(AsNobody("unshare -r truncate -s 1 f"));
  EXPECT_EQ(Mode("f"), 0777u) << "truncate";
}

TEST_F(PrivilegeTest, PrivilegedWritesKeepTheBitsAndChownClearsThem) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  SetMode("f", 06777);
  Ok("sh -c 'echo more >> f' && truncate -s 100 f");  // root holds CAP_FSETID
  EXPECT_EQ(Mode("f"), 06777u);
  ASSERT_EQ(::chown(P("f").c_str(), 65534, 65534), 0);
  EXPECT_EQ(Mode("f"), 0777u) << "chown";
  SetMode("f", 06755);
  ASSERT_EQ(::chown(P("f").c_str(), 0, 0), 0);
  EXPECT_EQ(Mode("f"), 0755u) << "chown back";
}

TEST_F(PrivilegeTest, WriteRemovesFileCapabilities) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  // VFS_CAP_REVISION_2, permitted CAP_NET_RAW: the format the kernel accepts from root.
  Ok("setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 f");
  Ok("setfattr -n user.keep -v 1 f");
  Ok("getfattr -n security.capability f");
  Ok("sh -c 'echo more >> f'");
  EXPECT_ERRNO(ENODATA, ::getxattr(P("f").c_str(), "security.capability", nullptr, 0));
  EXPECT_EQ(::getxattr(P("f").c_str(), "user.keep", nullptr, 0), 1);
  // And on chown, with the xattr block freed when the capability was the last xattr.
  Ok("setfattr -x user.keep f && setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 f");
  ASSERT_EQ(::chown(P("f").c_str(), 65534, 65534), 0);
  EXPECT_ERRNO(ENODATA, ::getxattr(P("f").c_str(), "security.capability", nullptr, 0));
}

// A full region: the failing write reports ENOSPC, earlier data is intact, and the
// filesystem is consistent after unmount.
class FullRegionTest : public PosixTest {};

TEST_F(FullRegionTest, EnospcLeavesEverythingConsistent) {
  // Fill the region with 1 MiB files until ENOSPC.
  std::string mib(1 << 20, 'e');
  int files = 0;
  for (;; ++files) {
    int fd = ::open(P("fill" + std::to_string(files)).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ssize_t n = ::write(fd, mib.data(), mib.size());
    int err = errno;
    ::close(fd);
    if (n != (ssize_t)mib.size()) {
      ASSERT_TRUE(n == -1 ? err == ENOSPC : n >= 0) << std::strerror(err);
      break;
    }
    ASSERT_LT(files, 10000);
  }
  ASSERT_GT(files, 10);
  int fd = ::open(P("fill0").c_str(), O_WRONLY);
  EXPECT_ERRNO(ENOSPC, ::fallocate(fd, 0, 1 << 20, 64 << 20));
  ::close(fd);
  for (int i = 0; i < files; i += 7) EXPECT_EQ(ReadFile(P("fill" + std::to_string(i))), mib) << i;
  // Space comes back after deleting.
  ASSERT_EQ(::unlink(P("fill1").c_str()), 0);
  EXPECT_TRUE(WriteFile(P("after"), mib));
  EXPECT_EQ(ReadFile(P("after")), mib);
  ASSERT_EQ(m_.Unmount(), 0);
  CommandResult fsck = m_.Fsck("-n");
  EXPECT_EQ(fsck.status, 0) << fsck.output;
  ASSERT_TRUE(m_.Mount());
  for (int i = 0; i < files; i += 7) {
    if (i == 1) continue;
    EXPECT_EQ(ReadFile(P("fill" + std::to_string(i))), mib) << i;
  }
}

}  // namespace
}  // namespace pmemfs::testing
