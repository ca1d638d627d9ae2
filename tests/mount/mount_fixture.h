// SPDX-License-Identifier: BSD-3-Clause
// A real pmemfs mount for integration tests: a region file formatted with the real
// mkfs.pmemfs, mounted by the real `pmemfs REGION MNT -f` through /dev/fuse, driven with
// syscalls and real commands. Needs root (CI runs as root) and /dev/fuse.
//
// Binary paths come from the PMEMFS_BIN_DIR compile definition (the build's bin/).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef PMEMFS_BIN_DIR
#error "PMEMFS_BIN_DIR must name the directory holding pmemfs, mkfs.pmemfs and fsck.pmemfs"
#endif

namespace pmemfs::testing {

inline std::string Bin(const std::string& name) { return std::string(PMEMFS_BIN_DIR) + "/" + name; }

// The device-dax emulation (PMEMFS_TEST_DEVDAX=ALIGN, src/common/devdax.h) the tests run
// under: its alignment in bytes, or 0. Region files are then made by the test (as ndctl
// makes a namespace) and formatted without --size, which a device-dax refuses.
inline uint64_t EmulatedDevdaxAlign() {
  const char* env = std::getenv("PMEMFS_TEST_DEVDAX");
  if (env == nullptr || *env == '\0') return 0;
  char* end = nullptr;
  uint64_t n = std::strtoull(env, &end, 10);
  switch (*end) {
    case 'K': case 'k': return n << 10;
    case 'M': case 'm': return n << 20;
    case 'G': case 'g': return n << 30;
    default: return n;
  }
}
// The region's mapping alignment as getfattr shows it: "4K" for a file, "2M" under
// PMEMFS_TEST_DEVDAX=2M; `at_least` (bytes) raises it, as the daemon raises an alignment
// below the region's.
inline std::string AlignName(uint64_t at_least = 4096) {
  uint64_t a = std::max<uint64_t>({EmulatedDevdaxAlign(), 4096, at_least});
  if (a % (1ull << 30) == 0) return std::to_string(a >> 30) + "G";
  if (a % (1ull << 20) == 0) return std::to_string(a >> 20) + "M";
  return std::to_string(a >> 10) + "K";
}

struct CommandResult {
  int status = -1;  // exit code, or 128+signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs `sh -c cmd`, capturing stdout+stderr.
inline CommandResult Sh(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(("( " + cmd + " ) 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// True while MNT appears in /proc/self/mountinfo as a fuse.pmemfs mount.
inline bool IsMounted(const std::string& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::string id, parent, dev, root, point;
    ss >> id >> parent >> dev >> root >> point;
    if (point == mnt && line.find(" - fuse.pmemfs ") != std::string::npos) return true;
  }
  return false;
}

// Where tests put regions and mount points: $PMEMFS_TEST_DIR (scripts/test.sh gives each
// run a directory of its own and removes it on every exit), else /dev/shm.
inline std::string TestBaseDir() {
  const char* d = std::getenv("PMEMFS_TEST_DIR");
  return d && *d ? d : "/dev/shm";
}

// Nothing is left behind when a test binary is interrupted (SIGINT, SIGTERM, SIGHUP): the
// handler stops each live daemon, detaches its mount and removes its directory, with
// async-signal-safe calls only (umount2, kill, waitpid, nanosleep, fork+exec of rm). A
// SIGKILLed binary cannot clean up: each daemon it started then gets SIGTERM from the
// kernel (PR_SET_PDEATHSIG) and unmounts, and scripts/test.sh removes its directory.
namespace cleanup {
struct Slot {
  volatile sig_atomic_t used = 0;
  volatile pid_t pid = -1;
  char dir[512] = {};
  char mnt[512] = {};
};
inline Slot slots[64];

inline void OnSignal(int sig) {
  for (Slot& s : slots) {
    if (!s.used) continue;
    ::umount2(s.mnt, MNT_DETACH);
    if (s.pid > 0) {
      ::kill(s.pid, SIGTERM);
      timespec tick{0, 10 * 1000 * 1000};
      int i = 0;
      while (::waitpid(s.pid, nullptr, WNOHANG) == 0 && i++ < 200) ::nanosleep(&tick, nullptr);
      if (i > 200) ::kill(s.pid, SIGKILL);
    }
    pid_t rm = ::fork();
    if (rm == 0) {
      ::execl("/bin/rm", "rm", "-rf", s.dir, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (rm > 0) ::waitpid(rm, nullptr, 0);
    s.used = 0;
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// A slot for one PmemfsMount (installs the handler once), or -1 when all are taken.
inline int Take(const std::string& dir, const std::string& mnt) {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
    return true;
  }();
  (void)installed;
  for (int i = 0; i < 64; ++i) {
    if (slots[i].used || dir.size() >= sizeof(slots[i].dir) || mnt.size() >= sizeof(slots[i].mnt)) continue;
    std::snprintf(slots[i].dir, sizeof(slots[i].dir), "%s", dir.c_str());
    std::snprintf(slots[i].mnt, sizeof(slots[i].mnt), "%s", mnt.c_str());
    slots[i].pid = -1;
    slots[i].used = 1;
    return i;
  }
  return -1;
}
}  // namespace cleanup

// One region file and one mount point, both under a fresh directory; the region lives on
// TestBaseDir() (cheap persistence) unless the test asks for another directory.
class PmemfsMount {
 public:
  explicit PmemfsMount(uint64_t region_bytes = 256ull << 20, std::string dir = TestBaseDir()) {
    std::string tmpl = dir + "/pmemfs-test.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) std::abort();
    dir_ = buf.data();
    region_ = dir_ + "/region";
    mnt_ = dir_ + "/mnt";
    std::filesystem::create_directory(mnt_);
    region_bytes_ = region_bytes;
    slot_ = cleanup::Take(dir_, mnt_);
  }
  ~PmemfsMount() {
    if (pid_ > 0) Unmount();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    if (slot_ >= 0) cleanup::slots[slot_].used = 0;
  }
  PmemfsMount(const PmemfsMount&) = delete;
  PmemfsMount& operator=(const PmemfsMount&) = delete;

  const std::string& region() const { return region_; }
  const std::string& mnt() const { return mnt_; }
  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& rel) const { return mnt_ + "/" + rel; }
  pid_t daemon_pid() const { return pid_; }
  bool mounted() const { return pid_ > 0; }
  bool ever_mounted() const { return ever_mounted_; }

  // mkfs.pmemfs --size on the region file; extra arguments are appended. Under the
  // device-dax emulation the test makes the file (a device-dax has a fixed size) and mkfs
  // formats it as it is.
  CommandResult Mkfs(const std::string& extra = "") const {
    if (EmulatedDevdaxAlign() != 0) {
      return Sh("truncate -s " + std::to_string(region_bytes_) + " " + region_ + " && " + Bin("mkfs.pmemfs") +
                " -f " + extra + " " + region_);
    }
    return Sh(Bin("mkfs.pmemfs") + " -f --size " + std::to_string(region_bytes_) + " " + extra +
               " " + region_);
  }
  CommandResult Fsck(const std::string& args = "-n") const {
    return Sh(Bin("fsck.pmemfs") + " " + args + " " + region_);
  }

  // Starts `pmemfs REGION MNT -f [-o opts]` and waits until the mount is visible. Returns
  // false (with the daemon's output in last_output()) if the daemon exits first.
  bool Mount(const std::string& opts = "") {
    log_ = dir_ + "/daemon.log";
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // The daemon stops (and unmounts) when this test process dies, however it dies.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::string bin = Bin("pmemfs");
      std::vector<const char*> argv = {bin.c_str(), region_.c_str(), mnt_.c_str(), "-f"};
      if (!opts.empty()) argv.push_back("-o"), argv.push_back(opts.c_str());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    if (slot_ >= 0) cleanup::slots[slot_].pid = pid_;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (IsMounted(mnt_)) return ever_mounted_ = true;
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        if (slot_ >= 0) cleanup::slots[slot_].pid = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  bool MkfsAndMount(const std::string& opts = "") { return Mkfs().status == 0 && Mount(opts); }

  // Clean unmount (fusermount3 -u) and waits for the daemon; returns its exit status.
  // If the mount stays busy for 10 s (a test leaked a descriptor), it is detached lazily
  // and the daemon terminated, and the result is -1 so that the test fails.
  int Unmount() {
    if (pid_ <= 0) return -1;
    bool clean = false;
    for (int i = 0; i < 200 && !clean; ++i) {
      clean = !IsMounted(mnt_) || Sh("fusermount3 -u " + mnt_).status == 0;
      if (!clean) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // EBUSY
    }
    if (!clean) {
      Sh("umount -l " + mnt_);
      ::kill(pid_, SIGTERM);
      Reap();
      return -1;
    }
    return Reap();
  }
  // SIGKILLs the daemon (a crash: no checkpoint) and detaches the dead mount.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    Reap();
    Sh("umount -l " + mnt_);
  }
  bool Remount(const std::string& opts = "") { return Unmount() == 0 && Mount(opts); }

  std::string last_output() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  int Reap() {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    if (slot_ >= 0) cleanup::slots[slot_].pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  std::string dir_, region_, mnt_, log_;
  uint64_t region_bytes_;
  pid_t pid_ = -1;
  bool ever_mounted_ = false;
  int slot_ = -1;  // cleanup::slots
};

// A gtest fixture holding one formatted, mounted pmemfs for each test.
class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_.MkfsAndMount(MountOptions())) << m_.last_output();
  }
  // Every mounted test ends with a clean unmount and a clean `fsck.pmemfs -n`: a leak or a
  // malformed structure fails the test that caused it.
  // A test that damages its region on purpose clears fsck_on_teardown_.
  void TearDown() override {
    if (m_.mounted()) {
      EXPECT_EQ(m_.Unmount(), 0) << m_.last_output();
    }
    if (!m_.ever_mounted() || !fsck_on_teardown_) return;
    CommandResult fsck = m_.Fsck("-n");
    EXPECT_EQ(fsck.status, 0) << "fsck.pmemfs -n after the test:\n" << fsck.output;
  }
  virtual std::string MountOptions() const { return ""; }

  std::string P(const std::string& rel) const { return m_.Path(rel); }
  // Runs cmd in the mount point and expects it to succeed (Ok) or fail (Fails); returns
  // its output.
  std::string Ok(const std::string& cmd) {
    CommandResult r = Sh("cd " + m_.mnt() + " && " + cmd);
    EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
    return r.output;
  }
  std::string Fails(const std::string& cmd) {
    CommandResult r = Sh("cd " + m_.mnt() + " && " + cmd);
    EXPECT_NE(r.status, 0) << cmd << "\n" << r.output;
    return r.output;
  }

  PmemfsMount m_;
  bool fsck_on_teardown_ = true;
};

// Under the device-dax emulation every flagged file must be mappable there: for each file
// below `mnt` with user.pmemfs.immutable_extents set, expects the flag's alignment to be
// at least the region's and every region offset in user.pmemfs.extents to be a multiple of
// it. Returns the number of flagged files seen.
inline int ExpectFlaggedExtentsAligned(const std::string& mnt) {
  const uint64_t align = std::max<uint64_t>(EmulatedDevdaxAlign(), 4096);
  int flagged = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(mnt, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    const std::string path = it->path().string();
    char flag[32];
    ssize_t n = ::getxattr(path.c_str(), "user.pmemfs.immutable_extents", flag, sizeof flag);
    if (n <= 0 || std::string(flag, n) == "0") continue;
    ++flagged;
    const std::string value(flag, n);
    uint64_t shift = value.back() == 'G' ? 30 : value.back() == 'M' ? 20 : value.back() == 'K' ? 10 : 0;
    EXPECT_GE(std::strtoull(value.c_str(), nullptr, 10) << shift, align) << path << ": alignment " << value;
    std::vector<char> buf(1 << 20);
    ssize_t len = ::getxattr(path.c_str(), "user.pmemfs.extents", buf.data(), buf.size());
    EXPECT_GE(len, 0) << path;
    std::istringstream lines(std::string(buf.data(), std::max<ssize_t>(len, 0)));
    for (std::string line; std::getline(lines, line);) {
      std::istringstream ls(line);
      uint64_t logical = 0, region = 1;
      ls >> logical >> region;
      EXPECT_EQ(region % align, 0u) << path << ": extent '" << line << "' not at a multiple of " << align;
    }
  }
  return flagged;
}

// Expects `call` to fail with `err`.
#define EXPECT_ERRNO(err, call)                                         \
  do {                                                                  \
    errno = 0;                                                          \
    EXPECT_EQ((call), -1) << #call;                                     \
    EXPECT_EQ(errno, (err)) << #call << ": " << std::strerror(errno);   \
  } while (0)

// Reads a whole file; empty string if it cannot be opened.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
inline bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  return static_cast<bool>(out);
}

// The immutable-extents, direct-mapping and userspace-I/O suites: mounted with allow_other
// (their commands run as other users too), every flagged file checked for device-dax
// alignment before the unmount, commands run in the mount point (In).
class ClientMountTest : public MountTest {
 protected:
  std::string MountOptions() const override { return "allow_other"; }
  void TearDown() override {
    if (IsMounted(m_.mnt())) ExpectFlaggedExtentsAligned(m_.mnt());
    MountTest::TearDown();
  }
  CommandResult In(const std::string& cmd) { return Sh("cd " + m_.mnt() + " && " + cmd); }
};

}  // namespace pmemfs::testing
