// SPDX-License-Identifier: BSD-3-Clause
// Direct mapping on a real mount: libpmemfs, the LD_PRELOAD shim with unmodified tools,
// leases, permissions, coherence with read()/write() through the mount.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "client/libpmemfs.h"
#include "mount/mount_fixture.h"

#ifndef PMEMFS_LIB_DIR
#error "PMEMFS_LIB_DIR must name the directory holding libpmemfs-preload.so"
#endif

namespace pmemfs::testing {
namespace {

const std::string kPreload = "LD_PRELOAD=" PMEMFS_LIB_DIR "/libpmemfs-preload.so ";

class MappingTest : public ClientMountTest {
 protected:
  void Ok(const std::string& cmd) {
    CommandResult r = In(cmd);
    ASSERT_EQ(r.status, 0) << cmd << "\n" << r.output;
  }
  std::string Counters(const std::string& args) { return Bin("map_counters") + " " + args; }
  // A flagged file of `size` bytes.
  void Flagged(const std::string& name, const std::string& size, const std::string& align = "1") {
    Ok("truncate -s " + size + " " + name + " && setfattr -n user.pmemfs.immutable_extents -v " + align + " " +
       name);
  }
};

TEST_F(MappingTest, LibraryStoresAreVisibleThroughReadAndInTheRegion) {
  Flagged("f", "1M");
  Ok(Counters("store lib f 5000 7"));
  Ok(Counters("check f 5000 7"));  // another process, read() through the mount
  Ok("getfattr --only-values -n user.pmemfs.extents f > " + m_.dir() + "/extents");
  Ok(Counters("check f 5000 7 " + m_.region() + " " + m_.dir() + "/extents"));  // the media itself
  // The check is not vacuous: other values are not there.
  EXPECT_NE(In(Counters("check f 5000 8")).status, 0);
}

TEST_F(MappingTest, ChildAfterForkKeepsAWorkingMapping) {
  Flagged("f", "1M");
  Ok(Counters("store lib f 4000 11 fork"));
  Ok(Counters("check f 4000 11"));
}

TEST_F(MappingTest, LeaseBlocksClearingAndEndsWithSigkill) {
  Flagged("f", "256K");
  std::string fifo = m_.dir() + "/ready";
  Ok("mkfifo " + fifo);
  pid_t holder = ::fork();
  if (holder == 0) {
    int out = ::open(fifo.c_str(), O_WRONLY);
    ::dup2(out, 1);
    std::string bin = Bin("map_counters"), file = P("f");
    ::execl(bin.c_str(), bin.c_str(), "hold", file.c_str(), nullptr);
    ::_exit(127);
  }
  std::ifstream ready(fifo);
  std::string line;
  std::getline(ready, line);  // the holder keeps the pipe open: read one line, not to EOF
  EXPECT_EQ(line, "mapped");
  CommandResult busy = In("setfattr -n user.pmemfs.immutable_extents -v 0 f");
  EXPECT_NE(busy.status, 0);
  EXPECT_NE(busy.output.find("busy"), std::string::npos) << busy.output;
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  int rc = -1;
  for (int i = 0; i < 200 && rc != 0; ++i) {
    rc = In("setfattr -n user.pmemfs.immutable_extents -v 0 f").status;
    if (rc != 0) ::usleep(10000);
  }
  EXPECT_EQ(rc, 0) << "the lease must end with its process";
}

TEST_F(MappingTest, UserWithoutAccessToTheRegionGetsEaccesAndTheShimFallsBack) {
  Flagged("f", "64K");
  Ok("chmod 666 f");
  ASSERT_EQ(::chmod(m_.region().c_str(), 0600), 0);
  ASSERT_EQ(::chmod(m_.dir().c_str(), 0755), 0);
  const std::string nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  CommandResult lib = In(nobody + Counters("store lib f 10 3"));
  EXPECT_EQ(lib.status, 2);
  EXPECT_NE(lib.output.find("Permission denied"), std::string::npos) << lib.output;
  // Under the shim the call goes on to the kernel, which refuses a shared mapping of a
  // file that bypasses the page cache: ENODEV, documented in the README.
  CommandResult shim = In(nobody + "env " + kPreload + Counters("store plain f 10 3"));
  EXPECT_EQ(shim.status, 2);
  EXPECT_NE(shim.output.find("No such device"), std::string::npos) << shim.output;
  EXPECT_EQ(In(nobody + "cat f > /dev/null").status, 0) << "read() still works";
}

TEST_F(MappingTest, ShimServesPlainMmapAndMsync) {
  Flagged("f", "1M");
  // Without the shim the kernel refuses the shared mapping of a flagged file...
  EXPECT_EQ(In(Counters("store plain f 10 5")).status, 2);
  // ... with it, the same program gets the direct mapping, and msync persists.
  Ok(kPreload + Counters("store plain f 5000 5"));
  Ok(Counters("check f 5000 5"));
  Ok("getfattr --only-values -n user.pmemfs.extents f > " + m_.dir() + "/extents");
  Ok(Counters("check f 5000 5 " + m_.region() + " " + m_.dir() + "/extents"));
}

TEST_F(MappingTest, FioMmapAndLibpmemEnginesVerifyUnderTheShim) {
  Flagged("g", "16M");
  for (const char* engine : {"mmap", "libpmem"}) {
    CommandResult r = In(kPreload + "fio --name=v --filename=g --ioengine=" + engine +
                         " --rw=randwrite --bs=4k --size=16M --verify=crc32c --do_verify=1 --output-format=terse");
    EXPECT_EQ(r.status, 0) << engine << "\n" << r.output;
    EXPECT_EQ(r.output.find("verify"), std::string::npos) << engine << " reported a verify error:\n" << r.output;
  }
}

// The daemon serves flagged files without the page cache: a store through the mapping is
// seen at once by read(), and a write() at once through the mapping.
TEST_F(MappingTest, CoherentWithReadAndWriteThroughTheMount) {
  Flagged("f", "4M", "2M");
  int fd = ::open(P("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  size_t len = 0;
  auto* p = static_cast<char*>(pmemfs_map(fd, &len));
  ASSERT_NE(p, nullptr) << pmemfs_errormsg();
  EXPECT_EQ(len, 4u << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (2 << 20), 0u) << "2 MiB alignment gives 2 MiB-aligned mappings";
  std::memcpy(p + 3000000, "stored", 6);
  pmemfs_persist(p + 3000000, 6);
  char buf[8] = {};
  ASSERT_EQ(::pread(fd, buf, 6, 3000000), 6);
  EXPECT_EQ(std::string(buf, 6), "stored");
  ASSERT_EQ(::pwrite(fd, "written", 7, 123456), 7);
  EXPECT_EQ(std::string(p + 123456, 7), "written");
  EXPECT_NE(pmemfs_find(p + 100, 8, nullptr), nullptr);
  EXPECT_EQ(pmemfs_find(buf, 8, nullptr), nullptr);
  ::close(fd);  // the mapping outlives the caller's descriptor
  p[0] = 'x';
  pmemfs_persist(p, 1);
  EXPECT_EQ(ReadFile(P("f"))[0], 'x');
  EXPECT_EQ(pmemfs_unmap(p), 0);
  EXPECT_EQ(pmemfs_unmap(p), -1);
  // Errors: an unflagged file and a file that is not on pmemfs.
  Ok("touch plain");
  fd = ::open(P("plain").c_str(), O_RDWR);
  errno = 0;
  EXPECT_EQ(pmemfs_map(fd, &len), nullptr);
  EXPECT_EQ(errno, EINVAL);
  ::close(fd);
  fd = ::open("/proc/self/status", O_RDONLY);
  errno = 0;
  EXPECT_EQ(pmemfs_map(fd, &len), nullptr);
  EXPECT_EQ(errno, ENOTTY);
  ::close(fd);
}

// Files without the flag map through the ordinary FUSE page cache, with msync durable.
TEST_F(MappingTest, UnflaggedFilesMapThroughThePageCache) {
  Ok("truncate -s 1M u");
  Ok(Counters("store plain u 3000 21"));
  Ok(Counters("check u 3000 21"));
  ASSERT_TRUE(m_.Remount("allow_other"));
  Ok(Counters("check u 3000 21"));
}

// Issue 14, items 2 and 3: a lease carries the access the descriptor and the mount allow,
// and is granted only to a caller who could open the region itself. The attacks run as an
// unprivileged user (setpriv), as the reproductions in the issue did.
class LeaseAccessTest : public MappingTest {
 protected:
  static constexpr const char* kNobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  // A flagged file of 1 MiB of 'a', owned by root, mode 0644.
  void FlaggedA(const std::string& name) {
    Ok("head -c 1M /dev/zero | tr '\\0' a > " + name + " && chmod 644 " + name +
       " && setfattr -n user.pmemfs.immutable_extents -v 1 " + name);
  }
  void RegionMode(const std::string& owner_group, mode_t mode) {
    ASSERT_EQ(Sh("chown " + owner_group + " " + m_.region()).status, 0);
    ASSERT_EQ(::chmod(m_.region().c_str(), mode), 0);
    ASSERT_EQ(::chmod(m_.dir().c_str(), 0755), 0);
  }
  static void ExpectLines(const std::string& out, const std::vector<std::string>& lines) {
    for (const auto& l : lines) EXPECT_NE(out.find(l + "\n"), std::string::npos) << "missing '" << l << "' in:\n" << out;
  }
};

TEST_F(LeaseAccessTest, ReadOnlyDescriptorGetsOnlyAReadOnlyMapping) {
  FlaggedA("f");
  // The user may write the region (group access): only the descriptor limits the mapping.
  RegionMode("0:4242", 0660);
  const std::string user = "setpriv --reuid=65534 --regid=65534 --groups=4242 ";
  CommandResult r = In(user + "env " + kPreload + Counters("access f"));
  ASSERT_EQ(r.status, 0) << r.output;
  ExpectLines(r.output, {"lease ok access=r", "map prot=r", "map-rw errno=EACCES", "mmap-rw errno=EACCES",
                         "mmap-r ok first=97 direct=1", "store signal=SEGV"});
  EXPECT_EQ(ReadFile(P("f")), std::string(1 << 20, 'a')) << "nothing written through a read-only descriptor";
  // The same user with a read-write descriptor gets a writable mapping: the test can tell.
  Ok("chmod 666 f");
  r = In(user + "env " + kPreload + Counters("access f rw"));
  ASSERT_EQ(r.status, 0) << r.output;
  ExpectLines(r.output, {"lease ok access=rw", "map prot=rw", "map-rw ok", "mmap-rw ok", "store ok"});
  EXPECT_EQ(ReadFile(P("f"))[0], 'W');
  // With read access to the region only, even O_RDWR gives a read-only lease.
  RegionMode("0:4242", 0640);
  r = In(user + Counters("access f rw"));
  ExpectLines(r.output, {"lease ok access=r", "map prot=r", "map-rw errno=EACCES"});
  // Without the group, no access to the region: no lease at all.
  r = In(std::string(kNobody) + Counters("access f"));
  ExpectLines(r.output, {"lease errno=EACCES", "map errno=EACCES"});
}

TEST_F(LeaseAccessTest, ReadOnlyMountGivesReadOnlyMappingsAndNothingWrittenSurvives) {
  FlaggedA("f");
  ASSERT_TRUE(m_.Remount("allow_other,ro")) << m_.last_output();
  CommandResult r = In("env " + kPreload + Counters("access f"));  // root, the region's owner
  ASSERT_EQ(r.status, 0) << r.output;
  ExpectLines(r.output, {"lease ok access=r", "map prot=r", "map-rw errno=EACCES", "mmap-rw errno=EACCES",
                         "mmap-r ok first=97 direct=1", "store signal=SEGV"});
  EXPECT_NE(In(Counters("access f rw")).status, 0) << "O_RDWR on a read-only mount";
  ASSERT_TRUE(m_.Remount("allow_other")) << m_.last_output();
  EXPECT_EQ(ReadFile(P("f")), std::string(1 << 20, 'a')) << "bytes written on a read-only mount survived";
}

TEST_F(LeaseAccessTest, UserWithoutRegionAccessCannotPinTheFlag) {
  FlaggedA("f");
  auto hold = [&](std::string* first) {
    std::string fifo = m_.dir() + "/lease-fifo";
    ::unlink(fifo.c_str());
    EXPECT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      int out = ::open(fifo.c_str(), O_WRONLY);
      ::dup2(out, 1);
      std::string bin = Bin("map_counters"), file = P("f");
      ::execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin.c_str(),
              "lease", file.c_str(), nullptr);
      ::_exit(127);
    }
    std::ifstream in(fifo);
    std::string held;
    std::getline(in, *first);
    std::getline(in, held);
    EXPECT_EQ(held, "held");
    return pid;
  };
  auto stop = [](pid_t pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  };
  // Control: a user who can read the region gets a read-only lease, which pins the flag.
  RegionMode("0:0", 0644);
  std::string first;
  pid_t holder = hold(&first);
  EXPECT_EQ(first, "lease ok access=r");
  CommandResult busy = In("setfattr -n user.pmemfs.immutable_extents -v 0 f");
  EXPECT_NE(busy.output.find("busy"), std::string::npos) << busy.output;
  stop(holder);
  // The attack: no access to the region, a read-only descriptor, the lease ioctl.
  RegionMode("0:0", 0600);
  for (int i = 0; i < 200 && In("setfattr -n user.pmemfs.immutable_extents -v 0 f").status != 0; ++i) ::usleep(10000);
  Ok("setfattr -n user.pmemfs.immutable_extents -v 1 f");
  holder = hold(&first);
  EXPECT_EQ(first, "lease errno=EACCES");
  Ok("setfattr -n user.pmemfs.immutable_extents -v 0 f");  // at once, while the descriptor lives
  Ok("truncate -s 0 f && rm f");
  stop(holder);
}

// A file flagged with 4 KiB alignment on a plain file region, then mapped by a client that
// sees the region as a device-dax of 2 MiB alignment (PMEMFS_TEST_DEVDAX=2M): libpmemfs
// refuses before libpmem2 would, naming the rule and the cure.
TEST(DevdaxClient, ExtentsOffTheRegionAlignmentAreRefusedNamingTheRule) {
  ::unsetenv("PMEMFS_TEST_DEVDAX");
  PmemfsMount m;
  ASSERT_TRUE(m.MkfsAndMount()) << m.last_output();
  const std::string f = m.Path("f");
  ASSERT_EQ(Sh("dd if=/dev/zero of=" + f + " bs=4k count=3 status=none && setfattr -n "
               "user.pmemfs.immutable_extents -v 4K " + f).status, 0);
  CommandResult plain = Sh(Bin("map_counters") + " store lib " + f + " 10 1");
  EXPECT_EQ(plain.status, 0) << plain.output;
  CommandResult dax = Sh("PMEMFS_TEST_DEVDAX=2M " + Bin("map_counters") + " store lib " + f + " 10 1");
  EXPECT_EQ(dax.status, 2) << dax.output;
  EXPECT_NE(dax.output.find("not multiples of the region's mapping alignment 2097152"), std::string::npos)
      << dax.output;
  EXPECT_NE(dax.output.find("-v 1"), std::string::npos) << dax.output;
  EXPECT_EQ(m.Unmount(), 0);
}

}  // namespace
}  // namespace pmemfs::testing
