// SPDX-License-Identifier: BSD-3-Clause
// io_sequence: a seeded random sequence of read/write-family calls on one file, printing
// one transcript line per call (its arguments, result, errno, and a hash of the bytes
// read), for comparing runs with and without libpmemfs's userspace path:
//
//   io_sequence FILE SEED COUNT [--lib] [--flag-after-open]
//
// Without options the calls are the libc ones (the LD_PRELOAD shim serves them when it is
// loaded); --lib uses pmemfs_pread/pwrite/preadv/pwritev/fsync/close/forget where they
// exist. --flag-after-open opens two descriptors (one used at once) before setting
// user.pmemfs.immutable_extents on FILE itself. Descriptors are named by slot, never by
// number, and a forked child prints its own lines before the parent goes on, so two runs
// that behave alike print the same transcript.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "client/libpmemfs.h"

namespace {

constexpr int kSlots = 4;
int g_fd[kSlots] = {-1, -1, -1, -1};
bool g_lib = false;
std::mt19937_64 g_rng;
std::string g_path;
off_t g_size = 0;
const char* g_who = "";

uint64_t Pick(uint64_t n) { return g_rng() % n; }

uint64_t Hash(const void* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  return h;
}

void Line(const char* what, long long ret, uint64_t hash = 0) {
  if (ret < 0) std::printf("%s%s -> -1 %s\n", g_who, what, strerrorname_np(errno));
  else if (hash) std::printf("%s%s -> %lld h=%016" PRIx64 "\n", g_who, what, ret, hash);
  else std::printf("%s%s -> %lld\n", g_who, what, ret);
}

int64_t Offset() {
  switch (Pick(20)) {
    case 0: return -static_cast<int64_t>(Pick(4096)) - 1;
    case 1: return INT64_MAX - static_cast<int64_t>(Pick(8192));
    case 2: case 3: return g_size + static_cast<int64_t>(Pick(1 << 20));
    case 4: case 5: case 6: case 7: return std::max<int64_t>(0, g_size - 8192 + static_cast<int64_t>(Pick(16384)));
    default: return static_cast<int64_t>(Pick(g_size));
  }
}

size_t Length() {
  static const size_t kLens[] = {0, 1, 7, 512, 4096, 4096, 4096, 4097, 65536, 200000, (1 << 20) + 5, (2 << 20) + 1};
  return kLens[Pick(sizeof kLens / sizeof kLens[0])];
}

int Flags() {
  static const int kFlags[] = {0, 0, 0, RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND, 0x40000000};
  return kFlags[Pick(sizeof kFlags / sizeof kFlags[0])];
}

// Segments over one buffer: their lengths are drawn, the buffer holds them all.
struct Vec {
  std::vector<char> buf;
  std::vector<iovec> iov;
  size_t total = 0;
};
Vec MakeVec(bool fill) {
  Vec v;
  int n = 1 + static_cast<int>(Pick(4));
  if (Pick(25) == 0) n = Pick(2) ? 0 : 1025;  // the kernel's EINVAL
  std::vector<size_t> lens(n);
  for (size_t& l : lens) v.total += l = Length() / (1 + Pick(3));
  v.buf.resize(v.total + 1);
  if (fill) for (char& c : v.buf) c = static_cast<char>(g_rng());
  size_t at = 0;
  for (size_t l : lens) {
    v.iov.push_back(iovec{v.buf.data() + at, l});
    at += l;
  }
  return v;
}
uint64_t VecHash(const Vec& v, ssize_t got) { return got > 0 ? Hash(v.buf.data(), got) : 0; }

int Open(int mode) {
  int fd = open(g_path.c_str(), mode);
  return fd;
}
const int kModes[] = {O_RDONLY, O_RDWR, O_RDWR, O_WRONLY, O_RDWR | O_APPEND, O_RDONLY | O_CLOEXEC, O_RDWR | O_SYNC};

int Close(int fd) { return g_lib ? pmemfs_close(fd) : close(fd); }

void Step(bool in_child);

void Fork() {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    g_who = "  child: ";
    for (int i = 0; i < 4; ++i) Step(true);
    std::fflush(stdout);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  Line("fork", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

void Step(bool in_child) {
  char what[160];
  const int s = static_cast<int>(Pick(kSlots));
  int& fd = g_fd[s];
  const uint64_t op = Pick(in_child ? 22 : 24);
  if (fd < 0 && op != 0) {  // a closed slot: open it (or once in a while, use it: EBADF)
    if (Pick(8) == 0) {
      char b[8];
      std::snprintf(what, sizeof what, "read slot%d (closed)", s);
      Line(what, read(1000 + s, b, sizeof b));
      return;
    }
    const int mode = kModes[Pick(sizeof kModes / sizeof kModes[0])];
    fd = Open(mode);
    std::snprintf(what, sizeof what, "open slot%d mode=%#o", s, mode);
    Line(what, fd < 0 ? -1 : 0);
    return;
  }
  switch (op) {
    case 0: {
      if (fd < 0) return;
      std::snprintf(what, sizeof what, "close slot%d", s);
      Line(what, Close(fd));
      fd = -1;
      return;
    }
    case 1: case 2: {
      size_t n = Length();
      std::vector<char> b(n + 1);
      ssize_t r = read(fd, Pick(40) ? b.data() : nullptr, n);
      std::snprintf(what, sizeof what, "read slot%d n=%zu", s, n);
      return Line(what, r, r > 0 ? Hash(b.data(), r) : 0);
    }
    case 3: case 4: {
      size_t n = Length();
      std::vector<char> b(n + 1);
      for (char& c : b) c = static_cast<char>(g_rng());
      std::snprintf(what, sizeof what, "write slot%d n=%zu", s, n);
      return Line(what, write(fd, b.data(), n));
    }
    case 5: case 6: case 7: {
      size_t n = Length();
      int64_t off = Offset();
      std::vector<char> b(n + 1);
      ssize_t r = g_lib ? pmemfs_pread(fd, b.data(), n, off) : pread(fd, b.data(), n, off);
      std::snprintf(what, sizeof what, "pread slot%d n=%zu off=%" PRId64, s, n, off);
      return Line(what, r, r > 0 ? Hash(b.data(), r) : 0);
    }
    case 8: case 9: case 10: {
      size_t n = Length();
      int64_t off = Offset();
      std::vector<char> b(n + 1);
      for (char& c : b) c = static_cast<char>(g_rng());
      std::snprintf(what, sizeof what, "pwrite slot%d n=%zu off=%" PRId64, s, n, off);
      return Line(what, g_lib ? pmemfs_pwrite(fd, b.data(), n, off) : pwrite(fd, b.data(), n, off));
    }
    case 11: {
      Vec v = MakeVec(false);
      ssize_t r = readv(fd, v.iov.data(), static_cast<int>(v.iov.size()));
      std::snprintf(what, sizeof what, "readv slot%d cnt=%zu total=%zu", s, v.iov.size(), v.total);
      return Line(what, r, VecHash(v, r));
    }
    case 12: {
      Vec v = MakeVec(true);
      std::snprintf(what, sizeof what, "writev slot%d cnt=%zu total=%zu", s, v.iov.size(), v.total);
      return Line(what, writev(fd, v.iov.data(), static_cast<int>(v.iov.size())));
    }
    case 13: {
      Vec v = MakeVec(false);
      int64_t off = Offset();
      ssize_t r = g_lib ? pmemfs_preadv(fd, v.iov.data(), static_cast<int>(v.iov.size()), off)
                        : preadv(fd, v.iov.data(), static_cast<int>(v.iov.size()), off);
      std::snprintf(what, sizeof what, "preadv slot%d cnt=%zu total=%zu off=%" PRId64, s, v.iov.size(), v.total, off);
      return Line(what, r, VecHash(v, r));
    }
    case 14: {
      Vec v = MakeVec(true);
      int64_t off = Offset();
      std::snprintf(what, sizeof what, "pwritev slot%d cnt=%zu total=%zu off=%" PRId64, s, v.iov.size(), v.total, off);
      return Line(what, g_lib ? pmemfs_pwritev(fd, v.iov.data(), static_cast<int>(v.iov.size()), off)
                              : pwritev(fd, v.iov.data(), static_cast<int>(v.iov.size()), off));
    }
    case 15: {
      Vec v = MakeVec(false);
      int64_t off = Pick(3) ? Offset() : -1;
      int flags = Flags();
      ssize_t r = preadv2(fd, v.iov.data(), static_cast<int>(v.iov.size()), off, flags);
      std::snprintf(what, sizeof what, "preadv2 slot%d cnt=%zu total=%zu off=%" PRId64 " flags=%#x", s, v.iov.size(),
                    v.total, off, flags);
      return Line(what, r, VecHash(v, r));
    }
    case 16: {
      Vec v = MakeVec(true);
      int64_t off = Pick(3) ? Offset() : -1;
      int flags = Flags();
      std::snprintf(what, sizeof what, "pwritev2 slot%d cnt=%zu total=%zu off=%" PRId64 " flags=%#x", s, v.iov.size(),
                    v.total, off, flags);
      return Line(what, pwritev2(fd, v.iov.data(), static_cast<int>(v.iov.size()), off, flags));
    }
    case 17: {
      static const int kWhence[] = {SEEK_SET, SEEK_CUR, SEEK_END};
      int w = kWhence[Pick(3)];
      int64_t off = w == SEEK_SET ? Offset() : static_cast<int64_t>(Pick(20000)) - 10000;
      std::snprintf(what, sizeof what, "lseek slot%d off=%" PRId64 " whence=%d", s, off, w);
      return Line(what, lseek(fd, off, w));
    }
    case 18: {  // duplicate into another slot (closing what it held, as dup2 does)
      const int t = static_cast<int>(Pick(kSlots));
      int& to = g_fd[t];
      int r = -1;
      switch (Pick(4)) {
        case 0:
          if (to >= 0) Close(to);
          r = to = dup(fd);
          std::snprintf(what, sizeof what, "dup slot%d -> slot%d", s, t);
          break;
        case 1:
        case 2: {
          int target = to >= 0 ? to : 60 + t;
          if (g_lib && target != fd) pmemfs_forget(target);
          bool three = Pick(2) && target != fd;
          r = three ? dup3(fd, target, O_CLOEXEC) : dup2(fd, target);
          if (r >= 0) to = r;
          std::snprintf(what, sizeof what, "%s slot%d -> slot%d", three ? "dup3" : "dup2", s, t);
          break;
        }
        default:
          if (to >= 0 && to != fd) Close(to);
          r = to = fcntl(fd, Pick(2) ? F_DUPFD : F_DUPFD_CLOEXEC, 3);
          std::snprintf(what, sizeof what, "F_DUPFD slot%d -> slot%d", s, t);
      }
      return Line(what, r < 0 ? -1 : 0);
    }
    case 19: {
      int fl = fcntl(fd, F_GETFL);
      int r = fcntl(fd, F_SETFL, fl ^ O_APPEND);
      if (g_lib) pmemfs_forget(fd);
      std::snprintf(what, sizeof what, "F_SETFL slot%d append=%d", s, !(fl & O_APPEND));
      return Line(what, r);
    }
    case 20: {
      std::snprintf(what, sizeof what, "fsync slot%d", s);
      return Line(what, g_lib ? pmemfs_fsync(fd) : fsync(fd));
    }
    case 21: {
      std::snprintf(what, sizeof what, "fdatasync slot%d", s);
      return Line(what, fdatasync(fd));
    }
    default:
      return Fork();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: io_sequence FILE SEED COUNT [--lib] [--flag-after-open]\n");
    return 64;
  }
  g_path = argv[1];
  g_rng.seed(std::strtoull(argv[2], nullptr, 0));
  const long count = std::strtol(argv[3], nullptr, 0);
  bool flag_after_open = false;
  for (int i = 4; i < argc; ++i) {
    g_lib |= std::strcmp(argv[i], "--lib") == 0;
    flag_after_open |= std::strcmp(argv[i], "--flag-after-open") == 0;
  }
  std::setvbuf(stdout, nullptr, _IOFBF, 1 << 16);
  struct stat st;
  if (stat(g_path.c_str(), &st) != 0) return std::perror(argv[1]), 1;
  g_size = st.st_size;
  if (flag_after_open) {
    g_fd[0] = Open(O_RDWR);
    g_fd[1] = Open(O_RDWR);
    char b[100];
    Line("before the flag: pread slot1", pread(g_fd[1], b, sizeof b, 10), Hash(b, sizeof b));
    Line("before the flag: pwrite slot1", pwrite(g_fd[1], "early", 5, 20));
    Line("setxattr immutable_extents", setxattr(g_path.c_str(), "user.pmemfs.immutable_extents", "1", 1, 0));
  }
  for (long i = 0; i < count; ++i) Step(false);
  for (int& fd : g_fd) {
    if (fd >= 0) Close(fd);
    fd = -1;
  }
  std::fflush(stdout);
  return 0;
}
