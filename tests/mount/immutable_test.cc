// SPDX-License-Identifier: BSD-3-Clause
// Immutable extents on a real mount (issue 4; semantics from the daxfile discussion in
// ../shared/seed): the xattr interface, preparation of the extent map, every refusal and
// every allowed operation, leases, persistence, privilege, ENOSPC.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/lease_protocol.h"
#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {

constexpr const char* kFlag = "user.pmemfs.immutable_extents";
constexpr const char* kExtents = "user.pmemfs.extents";


struct ExtentLine {
  uint64_t logical, region, length;
  std::string flags;
};

class ImmutableTest : public ClientMountTest {
 protected:
  int SetFlag(const std::string& rel, const std::string& value) {
    return ::setxattr(P(rel).c_str(), kFlag, value.data(), value.size(), 0);
  }
  std::string Flag(const std::string& rel) {
    char buf[64];
    ssize_t n = ::getxattr(P(rel).c_str(), kFlag, buf, sizeof buf);
    EXPECT_GE(n, 0) << std::strerror(errno);
    return n < 0 ? "" : std::string(buf, n);
  }
  std::string ExtentsText(const std::string& rel) {
    char buf[65536];
    ssize_t n = ::getxattr(P(rel).c_str(), kExtents, buf, sizeof buf);
    EXPECT_GE(n, 0) << std::strerror(errno);
    return n < 0 ? "" : std::string(buf, n);
  }
  std::vector<ExtentLine> Extents(const std::string& rel) {
    std::vector<ExtentLine> out;
    std::istringstream in(ExtentsText(rel));
    for (std::string line; std::getline(in, line);) {
      std::istringstream ls(line);
      ExtentLine e;
      ls >> e.logical >> e.region >> e.length >> e.flags;
      EXPECT_FALSE(ls.fail()) << "malformed line: " << line;
      std::string extra;
      EXPECT_FALSE(ls >> extra) << "more than four fields: " << line;
      out.push_back(e);
    }
    return out;
  }
  // Makes a file of `size` bytes with data only in its first 4 KiB and a hole after.
  void MakeSparse(const std::string& rel, off_t size) {
    int fd = ::open(P(rel).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    std::string head(4096, 'h');
    ASSERT_EQ(::pwrite(fd, head.data(), head.size(), 0), 4096);
    ASSERT_EQ(::ftruncate(fd, size), 0);
    ::close(fd);
  }
  uint64_t FreeBlocks() {
    struct statvfs sv{};
    EXPECT_EQ(::statvfs(m_.mnt().c_str(), &sv), 0);
    return sv.f_bfree;
  }
  // Reads the region file's bytes at `off`.
  std::string RegionBytes(uint64_t off, size_t len) {
    int fd = ::open(m_.region().c_str(), O_RDONLY);
    std::string out(len, '\0');
    EXPECT_EQ(::pread(fd, out.data(), len, off), (ssize_t)len);
    ::close(fd);
    return out;
  }
  static std::string AsNobody(const std::string& cmd) {
    return "setpriv --reuid=65534 --regid=65534 --clear-groups " + cmd;
  }
};

TEST_F(ImmutableTest, ValuesAndReading) {
  ASSERT_TRUE(WriteFile(P("f"), "data"));
  EXPECT_EQ(Flag("f"), "0");
  ASSERT_EQ(SetFlag("f", "1"), 0) << std::strerror(errno);
  EXPECT_EQ(Flag("f"), AlignName());  // "1": the region's mapping alignment, 4 KiB on a file
  ASSERT_EQ(SetFlag("f", "0"), 0);
  EXPECT_EQ(Flag("f"), "0");
  for (const char* v : {"64K", "2M", "4K", "4096"}) {
    ASSERT_EQ(SetFlag("f", v), 0) << v << ": " << std::strerror(errno);
    ASSERT_EQ(::removexattr(P("f").c_str(), kFlag), 0);  // setfattr -x clears
    EXPECT_EQ(Flag("f"), "0");
  }
  for (const char* v : {"3", "1000", "2K", "abc", "", "-1", "2G", "1.5M", "2MB"}) {
    EXPECT_ERRNO(EINVAL, SetFlag("f", v));
  }
  EXPECT_ERRNO(ENOSPC, SetFlag("f", "1G"));  // a valid value: 1 GiB aligned space does not fit
  // setfattr/getfattr themselves, and any reader of the file may read the flag.
  Ok("setfattr -n user.pmemfs.immutable_extents -v 64K f");
  EXPECT_EQ(Ok("getfattr --only-values -n user.pmemfs.immutable_extents f"), AlignName(64 << 10));
  Ok("chmod 644 f");
  EXPECT_EQ(Ok(AsNobody("getfattr --only-values -n user.pmemfs.immutable_extents f")), AlignName(64 << 10));
  Ok("setfattr -x user.pmemfs.immutable_extents f");

  // Only regular files.
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  EXPECT_ERRNO(EINVAL, SetFlag("d", "1"));
  // user.* attributes of fifos and symlinks are refused by the kernel itself (EPERM)
  // before the request reaches pmemfs.
  ASSERT_EQ(::mkfifo(P("p").c_str(), 0644), 0);
  EXPECT_ERRNO(EPERM, SetFlag("p", "1"));
  ASSERT_EQ(::symlink("f", P("s").c_str()), 0);
  EXPECT_ERRNO(EPERM, ::lsetxattr(P("s").c_str(), kFlag, "1", 1, 0));
}

// Decision (issue 17): an alignment below the region's mapping alignment is raised to it,
// and getfattr shows the effective value; "1" is the region's alignment. Under
// PMEMFS_TEST_DEVDAX=2M, "-v 4K" gives 2M-aligned extents that a device-dax can map.
TEST_F(ImmutableTest, AlignmentBelowTheRegionsIsRaised) {
  const uint64_t region_align = std::max<uint64_t>(EmulatedDevdaxAlign(), 4096);
  MakeSparse("f", (3 << 20) + 5);
  ASSERT_EQ(SetFlag("f", "4K"), 0) << std::strerror(errno);
  EXPECT_EQ(Flag("f"), AlignName());
  for (const auto& e : Extents("f")) {
    EXPECT_EQ(e.region % region_align, 0u) << ExtentsText("f");
    EXPECT_EQ(e.logical % region_align, 0u) << ExtentsText("f");
  }
  ASSERT_EQ(SetFlag("f", "0"), 0);
  ASSERT_EQ(SetFlag("f", "1"), 0);
  EXPECT_EQ(Flag("f"), AlignName());
  ASSERT_EQ(SetFlag("f", "0"), 0);
  ASSERT_EQ(SetFlag("f", "1G"), -1) << "above the region's alignment a value is kept (here: no 1G-aligned space)";
  EXPECT_EQ(errno, ENOSPC);
  ASSERT_EQ(SetFlag("f", "4M"), 0);
  EXPECT_EQ(Flag("f"), "4M");
  EXPECT_EQ(ExpectFlaggedExtentsAligned(m_.mnt()), 1);
}

TEST_F(ImmutableTest, ExtentsXattrFormatAndReadOnly) {
  int fd = ::open(P("f").c_str(), O_CREAT | O_WRONLY, 0644);
  std::string mib(1 << 20, 'x');
  ASSERT_EQ(::pwrite(fd, mib.data(), mib.size(), 0), (ssize_t)mib.size());
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 4 << 20, 1 << 20), 0);
  ::close(fd);
  auto ext = Extents("f");
  ASSERT_EQ(ext.size(), 2u) << ExtentsText("f");
  EXPECT_EQ(ext[0].logical, 0u);
  EXPECT_EQ(ext[0].length, 1u << 20);
  EXPECT_EQ(ext[0].flags, "-");
  EXPECT_EQ(ext[0].region % 4096, 0u);
  EXPECT_EQ(ext[1].logical, 4u << 20);
  EXPECT_EQ(ext[1].flags, "unwritten");
  EXPECT_EQ(RegionBytes(ext[0].region, 16), std::string(16, 'x')) << "REGION_OFFSET is where the bytes are";
  EXPECT_ERRNO(EPERM, ::setxattr(P("f").c_str(), kExtents, "0 0 0 -", 7, 0));
  EXPECT_ERRNO(EPERM, ::removexattr(P("f").c_str(), kExtents));
  EXPECT_EQ(Ok("getfattr --only-values -n user.pmemfs.extents f"), ExtentsText("f"));
}

TEST_F(ImmutableTest, RefusalsWhileFlagged) {
  std::string data(3 * 4096, 'a');
  ASSERT_TRUE(WriteFile(P("f"), data));
  ASSERT_TRUE(WriteFile(P("other"), "other"));
  ASSERT_EQ(SetFlag("f", "1"), 0);
  const std::string f = P("f");
  EXPECT_ERRNO(EPERM, ::truncate(f.c_str(), 100));
  EXPECT_ERRNO(EPERM, ::truncate(f.c_str(), 1 << 20));
  EXPECT_ERRNO(EPERM, ::open(f.c_str(), O_WRONLY | O_TRUNC));
  int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_ERRNO(EPERM, ::ftruncate(fd, 0));
  EXPECT_ERRNO(EPERM, ::pwrite(fd, "z", 1, data.size()));      // extends
  EXPECT_ERRNO(EPERM, ::pwrite(fd, "zz", 2, data.size() - 1));  // straddles EOF
  EXPECT_ERRNO(EPERM, ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  EXPECT_ERRNO(EPERM, ::fallocate(fd, FALLOC_FL_ZERO_RANGE, data.size() - 4096, 8192));  // extends
  // The kernel's FUSE refuses collapse and insert for every file (EOPNOTSUPP).
  EXPECT_ERRNO(EOPNOTSUPP, ::fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096));
  EXPECT_ERRNO(EOPNOTSUPP, ::fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096));
  EXPECT_ERRNO(EPERM, ::fallocate(fd, 0, 0, 1 << 20));  // extending
  ::close(fd);
  int afd = ::open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(afd, 0);
  EXPECT_ERRNO(EPERM, ::write(afd, "z", 1));
  ::close(afd);
  EXPECT_ERRNO(EPERM, ::unlink(f.c_str()));
  EXPECT_ERRNO(EPERM, ::rename(P("other").c_str(), f.c_str()));  // would replace it
  int in = ::open(P("other").c_str(), O_RDONLY), out = ::open(f.c_str(), O_WRONLY);
  loff_t in_off = 0, out_off = data.size() - 2;
  EXPECT_ERRNO(EPERM, ::copy_file_range(in, &in_off, out, &out_off, 5, 0));
  ::close(in);
  ::close(out);

  // The same through the commands.
  EXPECT_NE(Fails("truncate -s 0 f").find("Operation not permitted"), std::string::npos);
  EXPECT_NE(Fails("fallocate -p -o 0 -l 4096 f").find("Operation not permitted"), std::string::npos);
  EXPECT_NE(Fails("rm -f f").find("Operation not permitted"), std::string::npos);
  EXPECT_NE(Fails("mv other f").find("Operation not permitted"), std::string::npos);
  Fails("dd if=/dev/zero of=f bs=4096 count=1 status=none");  // dd truncates by default
  Fails("cp other f");                                         // cp opens with O_TRUNC
  Fails("printf more >> f");

  EXPECT_EQ(ReadFile(f), data) << "refusals must leave the file untouched";
  EXPECT_EQ(Extents("f").size(), 1u);
}

TEST_F(ImmutableTest, AllowedWhileFlagged) {
  std::string data(3 * 4096, 'a');
  ASSERT_TRUE(WriteFile(P("f"), data));
  ASSERT_EQ(SetFlag("f", "1"), 0);
  std::string map_before = ExtentsText("f");

  int fd = ::open(P("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "inplace", 7, 5000), 7);
  ASSERT_EQ(::write(fd, "head", 4), 4);
  EXPECT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096), 0);  // already allocated
  EXPECT_EQ(::fallocate(fd, 0, 0, 3 * 4096), 0);                // inside the size
  EXPECT_EQ(::ftruncate(fd, 3 * 4096), 0);                      // no size change
  EXPECT_EQ(::fallocate(fd, FALLOC_FL_ZERO_RANGE, 8192, 100), 0);  // zeroed in place
  ::close(fd);
  Ok("dd if=/dev/zero of=f bs=1 count=3 seek=100 conv=notrunc status=none");
  Ok("chmod 600 f && chown 1:1 f && touch -d 2020-01-01 f");
  Ok("setfattr -n user.other -v 1 f && getfattr -n user.other f");
  Ok("ln f hard && mv f renamed && test -e hard");
  Ok("cp renamed copy && test \"$(getfattr --only-values -n user.pmemfs.immutable_extents copy)\" = 0");
  Ok("truncate -s 0 copy && rm copy");  // the copy is an ordinary file

  std::string expect = data;
  expect.replace(0, 4, "head");
  expect.replace(100, 3, std::string(3, '\0'));
  expect.replace(5000, 7, "inplace");
  expect.replace(8192, 100, std::string(100, '\0'));
  EXPECT_EQ(ReadFile(P("renamed")), expect);
  EXPECT_EQ(ExtentsText("renamed"), map_before) << "allowed operations never change the map";
  ASSERT_TRUE(m_.Remount("allow_other"));
  EXPECT_EQ(ReadFile(P("renamed")), expect);
  EXPECT_EQ(Flag("renamed"), AlignName());
  EXPECT_EQ(ExtentsText("renamed"), map_before);
  // Cleared, the file is ordinary again.
  ASSERT_EQ(SetFlag("renamed", "0"), 0);
  EXPECT_EQ(::truncate(P("renamed").c_str(), 0), 0);
  EXPECT_EQ(::unlink(P("renamed").c_str()), 0);
}

// Preparation: holes and unwritten extents up to EOF (rounded to the alignment) become
// zeroed allocated extents, aligned as asked, without changing the contents.
TEST_F(ImmutableTest, PreparationOfASparseFileWith2MAlignment) {
  MakeSparse("f", (5 << 20) + 100);
  int fd = ::open(P("f").c_str(), O_WRONLY);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 3 << 20, 1 << 20), 0);  // unwritten
  ASSERT_EQ(::pwrite(fd, "mid", 3, 2 << 20), 3);
  ::close(fd);
  std::string before = ReadFile(P("f"));
  ASSERT_EQ(SetFlag("f", "2M"), 0) << std::strerror(errno);
  EXPECT_EQ(Flag("f"), "2M");
  EXPECT_EQ(ReadFile(P("f")), before);
  auto ext = Extents("f");
  ASSERT_FALSE(ext.empty());
  uint64_t next = 0;
  for (const auto& e : ext) {
    EXPECT_EQ(e.logical, next) << "no hole may remain: " << ExtentsText("f");
    EXPECT_EQ(e.region % (2 << 20), 0u) << "2 MiB-aligned region offsets: " << ExtentsText("f");
    EXPECT_EQ(e.length % (2 << 20), 0u);
    EXPECT_EQ(e.flags, "-") << "no unwritten extent may remain";
    next = e.logical + e.length;
  }
  EXPECT_EQ(next, 6u << 20) << "up to EOF rounded up to the alignment";
  // The region holds exactly the file's bytes at the listed offsets (zeros in former holes).
  for (const auto& e : ext) {
    std::string media = RegionBytes(e.region, e.length);
    std::string want = before.substr(std::min<size_t>(e.logical, before.size()), e.length);
    want.resize(e.length, '\0');
    EXPECT_TRUE(media == want) << "region bytes differ from the file at " << e.logical;
  }
}

// A deleted file's data must never become visible through a flagged file's former holes.
TEST_F(ImmutableTest, NoStaleDataThroughPreparedHoles) {
  std::string secret(8 << 20, 'S');
  ASSERT_TRUE(WriteFile(P("secret"), secret));
  ASSERT_EQ(::unlink(P("secret").c_str()), 0);
  MakeSparse("f", 8 << 20);
  ASSERT_EQ(SetFlag("f", "1"), 0);
  std::string got = ReadFile(P("f"));
  EXPECT_EQ(got.find('S'), std::string::npos);
  for (const auto& e : Extents("f")) {
    EXPECT_EQ(RegionBytes(e.region, e.length).find('S'), std::string::npos) << e.logical;
  }
}

TEST_F(ImmutableTest, LeaseBlocksClearingUntilReleased) {
  std::string data(64 << 10, 'L');
  ASSERT_TRUE(WriteFile(P("f"), data));
  ASSERT_EQ(SetFlag("f", "1"), 0);
  auto take_lease = [&](int fd) {
    pmemfs_lease_reply reply{};
    reinterpret_cast<pmemfs_lease_req*>(&reply)->version = PMEMFS_LEASE_VERSION;
    int rc = ::ioctl(fd, PMEMFS_IOC_LEASE, &reply);
    EXPECT_EQ(rc, 0) << std::strerror(errno);
    return reply;
  };
  int fd = ::open(P("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  pmemfs_lease_reply reply = take_lease(fd);
  EXPECT_EQ(reply.file_size, data.size());
  EXPECT_EQ(reply.total_extents, Extents("f").size());
  EXPECT_EQ(reply.extents[0].region_off, Extents("f")[0].region);
  EXPECT_EQ(std::string(reply.region_path), std::filesystem::canonical(m_.region()).string());
  EXPECT_ERRNO(EBUSY, SetFlag("f", "0"));
  EXPECT_ERRNO(EBUSY, ::removexattr(P("f").c_str(), kFlag));
  ::close(fd);
  // Release reaches the daemon asynchronously after close.
  int rc = -1;
  for (int i = 0; i < 200 && (rc = SetFlag("f", "0")) != 0; ++i) ::usleep(10000);
  EXPECT_EQ(rc, 0) << std::strerror(errno);

  // A lease holder killed with SIGKILL releases its lease too.
  ASSERT_EQ(SetFlag("f", "1"), 0);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    int cfd = ::open(P("f").c_str(), O_RDWR);
    pmemfs_lease_reply r{};
    reinterpret_cast<pmemfs_lease_req*>(&r)->version = PMEMFS_LEASE_VERSION;
    char ok = ::ioctl(cfd, PMEMFS_IOC_LEASE, &r) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  EXPECT_EQ(ok, 'y');
  EXPECT_ERRNO(EBUSY, SetFlag("f", "0"));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  for (int i = 0; i < 200 && (rc = SetFlag("f", "0")) != 0; ++i) ::usleep(10000);
  EXPECT_EQ(rc, 0) << std::strerror(errno);
  ::close(ready[0]);
  ::close(ready[1]);
  // No lease on an unflagged file.
  fd = ::open(P("f").c_str(), O_RDWR);
  pmemfs_lease_reply none{};
  reinterpret_cast<pmemfs_lease_req*>(&none)->version = PMEMFS_LEASE_VERSION;
  EXPECT_ERRNO(EINVAL, ::ioctl(fd, PMEMFS_IOC_LEASE, &none));
  ::close(fd);
}

TEST_F(ImmutableTest, FlagSurvivesRemountAndDaemonKill) {
  MakeSparse("f", 1 << 20);
  ASSERT_EQ(SetFlag("f", "64K"), 0);
  std::string map = ExtentsText("f");
  ASSERT_TRUE(m_.Remount("allow_other"));
  EXPECT_EQ(Flag("f"), AlignName(64 << 10));
  EXPECT_EQ(ExtentsText("f"), map);
  MakeSparse("g", 1 << 20);
  ASSERT_EQ(SetFlag("g", "2M"), 0);
  std::string gmap = ExtentsText("g");
  m_.Kill();  // power-cut-like: no clean unmount
  ASSERT_TRUE(m_.Mount("allow_other")) << m_.last_output();
  EXPECT_EQ(Flag("g"), "2M");
  EXPECT_EQ(ExtentsText("g"), gmap);
  EXPECT_ERRNO(EPERM, ::truncate(P("g").c_str(), 0));
}

TEST_F(ImmutableTest, PrivilegeToChangeTheFlag) {
  // Files writable by all: the kernel lets anyone with write access reach setxattr, so the
  // daemon's own privilege check is what is tested.
  Ok("touch f && chown 65534:65534 f && chmod 666 f && touch rootfile && chmod 666 rootfile");
  // An unprivileged owner, without -o user_immutable: EPERM.
  std::string out = Fails(AsNobody("setfattr -n user.pmemfs.immutable_extents -v 1 f"));
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  // Holding only CAP_LINUX_IMMUTABLE (not the owner, not root): allowed.
  Ok("setpriv --reuid=12345 --regid=12345 --clear-groups --inh-caps=+linux_immutable "
     "--ambient-caps=+linux_immutable setfattr -n user.pmemfs.immutable_extents -v 1 rootfile");
  EXPECT_EQ(Flag("rootfile"), AlignName());
  // With -o user_immutable the owner may; a non-owner still may not.
  ASSERT_TRUE(m_.Remount("allow_other,user_immutable"));
  Ok(AsNobody("setfattr -n user.pmemfs.immutable_extents -v 1 f"));
  EXPECT_EQ(Flag("f"), AlignName());
  Ok(AsNobody("setfattr -n user.pmemfs.immutable_extents -v 0 f"));
  out = Fails(AsNobody("setfattr -n user.pmemfs.immutable_extents -v 0 rootfile"));
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
}

// Capabilities held only in a child user namespace (`unshare -r`: CapEff is all ones
// there) are no privilege on this mount, as capable() decides for the initial namespace.
TEST_F(ImmutableTest, CapabilitiesOfAChildUserNamespaceDoNotCount) {
  Ok("touch mine rootfile && chown 65534:65534 mine && chmod 666 mine rootfile");
  std::string out = Fails(AsNobody("unshare -r setfattr -n user.pmemfs.immutable_extents -v 1 rootfile"));
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  EXPECT_EQ(Flag("rootfile"), "0");
  out = Fails(AsNobody("unshare -r setfattr -n user.pmemfs.immutable_extents -v 1 mine"));
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  // With -o user_immutable: the owner may, but another owner's flag stays out of reach.
  ASSERT_TRUE(m_.Remount("allow_other,user_immutable"));
  Ok("setfattr -n user.pmemfs.immutable_extents -v 1 rootfile");
  out = Fails(AsNobody("unshare -r setfattr -n user.pmemfs.immutable_extents -v 0 rootfile"));
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  EXPECT_NE(Flag("rootfile"), "0");
  Ok(AsNobody("unshare -r setfattr -n user.pmemfs.immutable_extents -v 1 mine"));
}

TEST_F(ImmutableTest, RefusalsAreLoggedOncePerFile) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  ASSERT_EQ(SetFlag("f", "1"), 0);
  EXPECT_ERRNO(EPERM, ::truncate(P("f").c_str(), 0));
  EXPECT_ERRNO(EPERM, ::truncate(P("f").c_str(), 0));
  EXPECT_ERRNO(EPERM, ::unlink(P("f").c_str()));
  std::string log = m_.last_output();
  size_t first = log.find("refused: the file has immutable extents");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_NE(log.rfind("[info]", first), std::string::npos);
  EXPECT_EQ(log.find("refused", first + 1), std::string::npos) << "logged more than once:\n" << log;
}

// ENOSPC during preparation leaves the file exactly as it was.
class ImmutableSmallRegionTest : public ::testing::Test {
 protected:
  PmemfsMount m_{32ull << 20};
};

TEST_F(ImmutableSmallRegionTest, EnospcDuringPreparationChangesNothing) {
  ASSERT_TRUE(m_.MkfsAndMount()) << m_.last_output();
  std::string f = m_.Path("f");
  int fd = ::open(f.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_EQ(::pwrite(fd, "abc", 3, 0), 3);
  ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);  // larger than the region
  ::close(fd);
  char map_before[4096];
  ssize_t n = ::getxattr(f.c_str(), kExtents, map_before, sizeof map_before);
  ASSERT_GT(n, 0);
  struct statvfs before{}, after{};
  ASSERT_EQ(::statvfs(m_.mnt().c_str(), &before), 0);
  EXPECT_ERRNO(ENOSPC, ::setxattr(f.c_str(), kFlag, "1", 1, 0));
  CommandResult r = Sh("setfattr -n user.pmemfs.immutable_extents -v 2M " + f);
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
  ASSERT_EQ(::statvfs(m_.mnt().c_str(), &after), 0);
  EXPECT_EQ(after.f_bfree, before.f_bfree);
  char map_after[4096];
  ASSERT_EQ(::getxattr(f.c_str(), kExtents, map_after, sizeof map_after), n);
  EXPECT_EQ(std::string(map_before, n), std::string(map_after, n));
  char flag[8];
  ASSERT_EQ(::getxattr(f.c_str(), kFlag, flag, sizeof flag), 1);
  EXPECT_EQ(flag[0], '0');
  EXPECT_EQ(::truncate(f.c_str(), 4096), 0) << "the file is still an ordinary file";
  EXPECT_EQ(m_.Unmount(), 0);
  EXPECT_EQ(m_.Fsck("-n").status, 0);
}

}  // namespace
}  // namespace pmemfs::testing
