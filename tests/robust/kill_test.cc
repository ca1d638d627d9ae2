// SPDX-License-Identifier: BSD-3-Clause
// The daemon killed with SIGKILL at random moments while processes create, write with
// fsync, rename and delete files; after each kill: remount (recovery), every file whose
// fsync (or rename, or unlink) had returned is exactly as written, and fsck is clean.
// PMEMFS_KILL_ITERATIONS sets the number of kills (default 200).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "common/crc32c.h"
#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {

constexpr int kChildren = 3;
constexpr long kFuseSuperMagic = 0x65735546;  // statfs f_type of every FUSE mount

// One child's workload: its own files, each step logged to `log` (outside the mount) only
// after the call returned; intents are logged before, so an operation cut by the kill is
// known to be in flight. Exits when the mount dies.
//
// Every operation goes through a directory descriptor opened on the live mount and checked
// to be FUSE: once the daemon is killed, calls on it fail (ENOTCONN), even after the dead
// mount is detached, and can never reach the bare mount point underneath, which lives in
// /dev/shm (a child that wrote there once filled the machine's memory).
[[noreturn]] void Child(const std::string& mnt, const std::string& log_path, int id, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  auto note = [&](const std::string& line) {
    std::string l = line + "\n";
    if (::write(log, l.data(), l.size()) != (ssize_t)l.size()) ::_exit(2);
  };
  // 1: on the FUSE mount; 0: somewhere else; -1: the mount died (fstatfs fails, ENOTCONN).
  auto on_fuse = [](int fd) {
    struct statfs fs {};
    if (fd < 0 || ::fstatfs(fd, &fs) != 0) return -1;
    return fs.f_type == kFuseSuperMagic ? 1 : 0;
  };
  int root = ::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  // Not the live mount: the daemon was killed before this child ran (a loaded machine);
  // touch nothing and do nothing, as a child does when the mount dies under it.
  if (on_fuse(root) != 1) ::_exit(0);
  const std::string sub = "c" + std::to_string(id);
  ::mkdirat(root, sub.c_str(), 0755);  // may exist from an earlier iteration
  int dir = ::openat(root, sub.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  // A directory opened through the FUSE mount's root that is not on FUSE is a test bug;
  // a mount that died meanwhile (even between openat and fstatfs) is the normal end.
  if (const int where = on_fuse(dir); where != 1) ::_exit(where == 0 ? 3 : 0);
  for (uint64_t n = rng() % 1000000;; ++n) {
    std::string name = "f" + std::to_string(n);
    switch (rng() % 4) {
      case 0:
      case 1: {  // create + write + fsync
        std::string data(rng() % 200000, '\0');
        for (auto& c : data) c = char(rng());
        note("I " + name);
        int fd = ::openat(dir, name.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) ::_exit(0);
        if (::write(fd, data.data(), data.size()) != (ssize_t)data.size() || ::fsync(fd) != 0) ::_exit(0);
        ::close(fd);
        note("W " + name + " " + std::to_string(Crc32c(data.data(), data.size())) + " " + std::to_string(data.size()));
        break;
      }
      case 2: {  // rename a file of ours
        std::string from = "f" + std::to_string(n - 1 - rng() % 5);
        note("R " + from + " " + name);
        if (::renameat(dir, from.c_str(), dir, name.c_str()) == 0) note("RD " + from + " " + name);
        else if (errno != ENOENT) ::_exit(0);
        else note("RX " + from + " " + name);
        break;
      }
      default: {  // unlink
        std::string victim = "f" + std::to_string(n - 1 - rng() % 5);
        note("U " + victim);
        if (::unlinkat(dir, victim.c_str(), 0) == 0) note("UD " + victim);
        else if (errno != ENOENT) ::_exit(0);
        else note("UX " + victim);
      }
    }
  }
}

struct Expect {
  enum State { kAbsent, kPresent, kEither } state = kAbsent;
  uint32_t crc = 0;
  uint64_t size = 0;
  bool content_known = false;  // kEither: if present, it holds exactly crc/size
};

// Replays a child's log into what must be true of each of its names.
// `renaming` receives the two names of a rename in flight: exactly one must exist.
std::map<std::string, Expect> Replay(const std::string& log_path, std::map<std::string, Expect> known,
                                     std::vector<std::string>* renaming) {
  std::ifstream in(log_path);
  std::vector<std::string> intent;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::string op;
    ss >> op;
    std::vector<std::string> args;
    for (std::string a; ss >> a;) args.push_back(a);
    if (op == "I" || op == "R" || op == "U") {
      intent = args;
      intent.insert(intent.begin(), op);
      continue;
    }
    intent.clear();
    if (op == "W") known[args[0]] = {Expect::kPresent, uint32_t(std::stoul(args[1])), std::stoull(args[2]), true};
    else if (op == "RD") {
      known[args[1]] = known[args[0]];
      known[args[0]] = {};
    } else if (op == "UD") {
      known[args[0]] = {};
    }
  }
  // The operation in flight when the daemon died: either outcome is allowed. Names can
  // repeat across iterations (each child starts at a random number), so an in-flight
  // create may truncate an older file of that name and a rename may replace one.
  if (!intent.empty()) {
    if (intent[0] == "I") known[intent[1]] = {Expect::kEither, 0, 0, false};
    if (intent[0] == "R") {
      if (known[intent[1]].state == Expect::kPresent) {
        Expect e = known[intent[1]];
        e.state = Expect::kEither;
        bool replaces = known[intent[2]].state != Expect::kAbsent;
        known[intent[1]] = e;
        if (replaces) {
          known[intent[2]] = {Expect::kEither, 0, 0, false};  // the old file or the renamed one
        } else {
          known[intent[2]] = e;
          *renaming = {intent[1], intent[2]};  // exactly one of the two names exists
        }
      }
    }
    if (intent[0] == "U" && known[intent[1]].state != Expect::kAbsent) known[intent[1]].state = Expect::kEither;
  }
  return known;
}

TEST(KillTest, SigkillDuringWorkloadLosesNothingThatWasSynced) {
  const char* env = std::getenv("PMEMFS_KILL_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 200;
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  PmemfsMount m(64ull << 20);
  ASSERT_TRUE(m.MkfsAndMount()) << m.last_output();
  std::vector<std::map<std::string, Expect>> known(kChildren);
  for (int it = 0; it < iterations; ++it) {
    std::vector<pid_t> kids;
    std::vector<std::string> logs;
    for (int c = 0; c < kChildren; ++c) {
      logs.push_back(m.dir() + "/log-" + std::to_string(it) + "-" + std::to_string(c));
      pid_t pid = ::fork();
      if (pid == 0) Child(m.mnt(), logs.back(), c, rng());
      kids.push_back(pid);
    }
    ::usleep(10000 + rng() % 100000);
    m.Kill();  // SIGKILL the daemon, detach the dead mount
    for (pid_t k : kids) {
      int st;
      ::waitpid(k, &st, 0);
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child " << k << " status " << st
                                                        << (WIFEXITED(st) && WEXITSTATUS(st) == 3 ? " (not on the mount)" : "");
    }
    // Nothing was written into the bare mount point while the daemon was dead.
    ASSERT_TRUE(std::filesystem::is_empty(m.mnt())) << "files in the unmounted mount point";
    // fsck of the image as the kill left it (the journal replayed in a copy): clean.
    CommandResult crashed = m.Fsck("-n");
    ASSERT_EQ(crashed.status, 0) << "iteration " << it << ": fsck after SIGKILL\n" << crashed.output;
    ASSERT_TRUE(m.Mount()) << "iteration " << it << ": remount after SIGKILL failed\n" << m.last_output();
    for (int c = 0; c < kChildren; ++c) {
      std::vector<std::string> renaming;
      known[c] = Replay(logs[c], known[c], &renaming);
      std::string dir = m.Path("c" + std::to_string(c)) + "/";
      if (!renaming.empty()) {
        struct stat a, b;
        bool from = ::stat((dir + renaming[0]).c_str(), &a) == 0, to = ::stat((dir + renaming[1]).c_str(), &b) == 0;
        ASSERT_NE(from, to) << "iteration " << it << ": rename " << renaming[0] << " -> " << renaming[1]
                            << " in flight left " << (from ? "both names" : "neither name");
      }
      for (auto& [name, e] : known[c]) {
        struct stat st;
        bool exists = ::stat((dir + name).c_str(), &st) == 0;
        if (e.state == Expect::kAbsent) {
          ASSERT_FALSE(exists) << "iteration " << it << ": c" << c << "/" << name << " was deleted";
        } else if (e.state == Expect::kPresent) {
          ASSERT_TRUE(exists) << "iteration " << it << ": c" << c << "/" << name << " lost";
          std::string data = ReadFile(dir + name);
          ASSERT_EQ(data.size(), e.size) << "iteration " << it << ": c" << c << "/" << name;
          ASSERT_EQ(Crc32c(data.data(), data.size()), e.crc) << "iteration " << it << ": c" << c << "/" << name;
        } else {
          // In flight: either outcome; whatever is there now is the truth from here on.
          if (!exists) {
            e = {};
          } else {
            std::string data = ReadFile(dir + name);
            uint32_t crc = Crc32c(data.data(), data.size());
            if (e.content_known) {
              ASSERT_TRUE(data.size() == e.size && crc == e.crc)
                  << "iteration " << it << ": c" << c << "/" << name << " changed content";
            }
            e = {Expect::kPresent, crc, data.size(), true};
          }
        }
      }
    }
    for (const auto& l : logs) ::unlink(l.c_str());
  }
  EXPECT_EQ(m.Unmount(), 0);
  CommandResult fsck = m.Fsck("-n");
  EXPECT_EQ(fsck.status, 0) << fsck.output;
}

}  // namespace
}  // namespace pmemfs::testing
