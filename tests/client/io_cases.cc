// SPDX-License-Identifier: BSD-3-Clause
// io_cases: the targeted scenarios of the userspace read/write tests (io_test.cc), each
// printing lines that must be the same with and without the LD_PRELOAD shim (except the
// "direct" lines, which say what libpmemfs serves itself).
//
//   io_cases errors FILE            EOF, partial reads and the errors left to the kernel
//   io_cases direct FILE MODE       pmemfs_io_direct of a descriptor opened with MODE (r|rw|w)
//   io_cases preflag FILE           descriptors opened before/after the flag is set here
//   io_cases threads FILE           threads writing/reading their own blocks with pwrite/pread,
//                                   and sharing one descriptor's offset with read()
//   io_cases fork FILE              a child moves the shared offset with write()
//   io_cases exec FILE              close-on-exec and inherited descriptors across exec
//   io_cases reuse FLAGGED PLAIN    descriptor numbers reused after close, syscall close, dup2
//   io_cases serve FILE             reads commands on stdin: "w OFF TEXT", "r OFF LEN",
//                                   "close", "fsync"; answers one line each (coherence)
//   io_cases stamp FILE [N]         N writes at once (default 100), close; prints "ok"
//   io_cases swap FLAGGED PLAIN     reader threads pread one descriptor number while another
//                                   thread points it at the other file (dup2, dup3
//                                   O_CLOEXEC, close then dup2); every read made while the number
//                                   certainly named one file must give that file's bytes
//
// FILE must be a flagged file of at least 1 MiB (threads: exactly 1 MiB).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "client/libpmemfs.h"

namespace {

void Say(const char* what, long long r) {
  if (r < 0) std::printf("%s -> -1 %s\n", what, strerrorname_np(errno));
  else std::printf("%s -> %lld\n", what, r);
  std::fflush(stdout);
}

int Open(const char* path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) {
    std::perror(path);
    std::exit(2);
  }
  return fd;
}

const char* DirectName(int mask) {
  return mask == (PMEMFS_IO_READ | PMEMFS_IO_WRITE) ? "rw" : mask == PMEMFS_IO_READ ? "r" : "kernel";
}

int Errors(const char* path) {
  struct stat st;
  stat(path, &st);
  const off_t size = st.st_size;
  char buf[8192];
  int rw = Open(path, O_RDWR);
  Say("pread at EOF-100 n=4096 (short)", pread(rw, buf, 4096, size - 100));
  Say("pread at EOF", pread(rw, buf, 4096, size));
  Say("pread past EOF", pread(rw, buf, 4096, size + 5000));
  Say("pwrite in place ending at EOF", pwrite(rw, buf, 100, size - 100));
  Say("pwrite crossing EOF (EPERM)", pwrite(rw, buf, 200, size - 100));
  Say("pwrite at EOF (EPERM)", pwrite(rw, buf, 1, size));
  Say("pwrite far past EOF (EPERM)", pwrite(rw, buf, 1, size + (1 << 20)));
  Say("lseek to EOF-10", lseek(rw, size - 10, SEEK_SET));
  Say("write crossing EOF (EPERM)", write(rw, buf, 20));
  Say("offset unchanged", lseek(rw, 0, SEEK_CUR));
  Say("read at EOF-10 (short)", read(rw, buf, 4096));
  Say("read at EOF", read(rw, buf, 4096));
  Say("offset at EOF", lseek(rw, 0, SEEK_CUR));
  Say("pwrite negative offset (EINVAL)", pwrite(rw, buf, 1, -1));
  Say("pread negative offset (EINVAL)", pread(rw, buf, 1, -1));
  Say("pwrite of nothing", pwrite(rw, buf, 0, size + 10));
  Say("pwritev2 RWF_APPEND (EPERM)", [&] {
    iovec v{buf, 10};
    return pwritev2(rw, &v, 1, 0, RWF_APPEND);
  }());
  close(rw);
  int ro = Open(path, O_RDONLY);
  Say("pwrite on O_RDONLY (EBADF)", pwrite(ro, buf, 10, 0));
  Say("write on O_RDONLY (EBADF)", write(ro, buf, 10));
  Say("pread on O_RDONLY", pread(ro, buf, 10, 0));
  close(ro);
  int wo = Open(path, O_WRONLY);
  Say("pread on O_WRONLY (EBADF)", pread(wo, buf, 10, 0));
  Say("pwrite on O_WRONLY in place", pwrite(wo, "wronly", 6, 1000));
  close(wo);
  int ap = Open(path, O_RDWR | O_APPEND);
  Say("write on O_APPEND (EPERM)", write(ap, buf, 10));
  Say("pwrite on O_APPEND (EPERM)", pwrite(ap, buf, 10, 0));
  Say("pread on O_APPEND", pread(ap, buf, 10, 0));
  Say("F_SETFL without O_APPEND", fcntl(ap, F_SETFL, 0));
  Say("pwrite after F_SETFL", pwrite(ap, "noappend", 8, 2000));
  Say("F_SETFL O_APPEND again", fcntl(ap, F_SETFL, O_APPEND));
  Say("pwrite after F_SETFL O_APPEND (EPERM)", pwrite(ap, buf, 10, 0));
  close(ap);
  return 0;
}

int Direct(const char* path, const char* mode) {
  int flags = std::strcmp(mode, "rw") == 0 ? O_RDWR : std::strcmp(mode, "w") == 0 ? O_WRONLY : O_RDONLY;
  int fd = Open(path, flags);
  int mask = pmemfs_io_direct(fd);
  std::printf("direct %s: %s%s%s\n", mode, DirectName(mask), mask ? "" : ": ", mask ? "" : pmemfs_errormsg());
  return 0;
}

int Preflag(const char* path) {
  int before = Open(path, O_RDWR);
  char b[16] = {};
  Say("pread before the flag", pread(before, b, 10, 0));
  Say("setxattr immutable_extents", setxattr(path, "user.pmemfs.immutable_extents", "1", 1, 0));
  std::printf("direct opened before the flag: %s\n", DirectName(pmemfs_io_direct(before)));
  int after = Open(path, O_RDWR);
  std::printf("direct opened after, while the other is open: %s\n", DirectName(pmemfs_io_direct(after)));
  Say("pwrite through the later descriptor", pwrite(after, "later", 5, 0));
  Say("pread through the earlier descriptor", pread(before, b, 5, 0));
  std::printf("earlier descriptor reads '%.5s'\n", b);
  Say("pwrite through the earlier descriptor", pwrite(before, "early", 5, 10));
  Say("pread through the later descriptor", pread(after, b, 5, 10));
  std::printf("later descriptor reads '%.5s'\n", b);
  close(before);
  close(after);
  int last = Open(path, O_RDWR);
  std::printf("direct opened after both closed: %s\n", DirectName(pmemfs_io_direct(last)));
  close(last);
  return 0;
}

// Each thread owns blocks i ≡ t (mod kThreads): pwrite a pattern, pread it back. Then all
// threads read() one shared descriptor in 4 KiB steps: every block must be read exactly once.
int Threads(const char* path) {
  constexpr int kThreads = 4, kBlocks = 256;  // the file's 1 MiB
  int fd = Open(path, O_RDWR);
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      char w[4096], r[4096];
      for (int round = 0; round < 20; ++round) {
        for (int b = t; b < kBlocks; b += kThreads) {
          std::memset(w, 'A' + (b + round) % 26, sizeof w);
          std::memcpy(w, &b, sizeof b);
          if (pwrite(fd, w, sizeof w, off_t{b} * 4096) != 4096 || pread(fd, r, sizeof r, off_t{b} * 4096) != 4096 ||
              std::memcmp(w, r, sizeof w) != 0)
            bad++;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  ts.clear();
  std::printf("pwrite/pread threads: %d mismatches\n", bad.load());
  int shared = Open(path, O_RDONLY);
  std::vector<std::atomic<int>> seen(kBlocks);
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      char r[4096];
      for (;;) {
        ssize_t n = read(shared, r, sizeof r);
        if (n <= 0) break;  // EOF: the file is kBlocks blocks long
        int b;
        std::memcpy(&b, r, sizeof b);
        if (n != 4096 || b < 0 || b >= kBlocks) {
          bad++;
          continue;
        }
        seen[b]++;
      }
    });
  }
  for (auto& t : ts) t.join();
  int once = 0;
  for (auto& s : seen) once += s.load() == 1;
  std::printf("shared read(): %d of %d blocks read exactly once, %d bad reads\n", once, kBlocks, bad.load());
  close(shared);
  close(fd);
  return 0;
}

int Fork(const char* path) {
  int fd = Open(path, O_RDWR);
  char b[128] = {};
  Say("read 100", read(fd, b, 100));
  pid_t pid = fork();
  if (pid == 0) {
    Say("child: write 10 at the shared offset", write(fd, "from-child", 10));
    Say("child: offset", lseek(fd, 0, SEEK_CUR));
    std::fflush(stdout);
    _exit(0);
  }
  waitpid(pid, nullptr, 0);
  Say("parent: offset after the child", lseek(fd, 0, SEEK_CUR));
  Say("parent: pread the child's bytes", pread(fd, b, 10, 100));
  std::printf("parent reads '%.10s'\n", b);
  Say("parent: write 6", write(fd, "parent", 6));
  Say("parent: offset", lseek(fd, 0, SEEK_CUR));
  close(fd);
  return 0;
}

int Exec(const char* self, const char* path) {
  int cloexec = Open(path, O_RDWR | O_CLOEXEC);
  int kept = Open(path, O_RDWR);
  char b[16];
  Say("read on the close-on-exec descriptor", read(cloexec, b, 10));
  Say("read on the inherited descriptor", read(kept, b, 10));
  Say("lseek the inherited descriptor to 1234", lseek(kept, 1234, SEEK_SET));
  std::fflush(stdout);
  std::string a = std::to_string(cloexec), k = std::to_string(kept);
  execl(self, self, "exec-child", path, a.c_str(), k.c_str(), nullptr);
  std::perror("execl");
  return 1;
}

int ExecChild(const char* path, int cloexec, int kept) {
  char b[16] = {};
  Say("after exec: read on the closed-on-exec number", read(cloexec, b, 10));
  Say("after exec: offset of the inherited descriptor", lseek(kept, 0, SEEK_CUR));
  Say("after exec: write 4 on the inherited descriptor", write(kept, "exec", 4));
  Say("after exec: pread it back", pread(kept, b, 4, 1234));
  std::printf("after exec: '%.4s'\n", b);
  (void)path;
  close(kept);
  return 0;
}

// A descriptor number served for the flagged file, then reused for a plain file.
int Reuse(const char* flagged, const char* plain) {
  char b[8] = {};
  for (int how = 0; how < 3; ++how) {
    int f = Open(flagged, O_RDWR);
    Say("pwrite flagged 'FLAGGED' at 0", pwrite(f, "FLAGGED", 7, 0));
    int p = -1;
    if (how == 0) {
      close(f);
      p = Open(plain, O_RDWR);
    } else if (how == 1) {
      syscall(SYS_close, f);  // behind libc's back: the next open() must still be seen
      p = Open(plain, O_RDWR);
    } else {
      int q = Open(plain, O_RDWR);
      p = dup2(q, f);
      close(q);
    }
    std::printf("%s: same number %d\n", how == 0 ? "close" : how == 1 ? "syscall close" : "dup2", p == f);
    Say("pwrite 'plain' at 0 through the reused number", pwrite(p, "plain", 5, 0));
    Say("pread 5 at 0 through it", pread(p, b, 5, 0));
    std::printf("reads '%.5s'\n", b);
    close(p);
    int g = Open(flagged, O_RDONLY);
    Say("pread flagged 7 at 0", pread(g, b, 7, 0));
    std::printf("flagged holds '%.7s'\n", b);
    close(g);
  }
  return 0;
}

int Serve(const char* path) {
  int fd = Open(path, O_RDWR);
  std::string cmd;
  while (std::cin >> cmd) {
    if (cmd == "w") {
      off_t off;
      std::string text;
      std::cin >> off >> text;
      ssize_t r = pwrite(fd, text.data(), text.size(), off);
      std::printf("%zd\n", r);
    } else if (cmd == "r") {
      off_t off;
      size_t len;
      std::cin >> off >> len;
      std::string buf(len, '\0');
      ssize_t r = pread(fd, buf.data(), len, off);
      std::printf("%s\n", r < 0 ? "ERR" : buf.substr(0, r).c_str());
    } else if (cmd == "direct") {
      std::printf("%s\n", DirectName(pmemfs_io_direct(fd)));
    } else if (cmd == "fsync") {
      std::printf("%d\n", fsync(fd));
    } else if (cmd == "close") {
      std::printf("%d\n", close(fd));
      fd = -1;
    }
    std::fflush(stdout);
  }
  return 0;
}

int Stamp(const char* path, int n) {
  int fd = Open(path, O_RDWR);
  char b[4096] = {};
  for (int i = 0; i < n; ++i) {
    if (pwrite(fd, b, sizeof b, off_t{i % 64} * 4096) != 4096) return std::perror("pwrite"), 1;
  }
  close(fd);
  std::printf("ok\n");
  return 0;
}

// The number `n` alternates between the flagged file (even generations) and the plain one
// (odd); `gen` is odd while it changes hands, so a read that saw the same even or odd
// generation before and after must hold that file's bytes: a shim that served a number
// from what it knew about the file it named before would fail this.
int Swap(const char* flagged, const char* plain) {
  std::vector<char> want[2];
  for (int i = 0; i < 2; ++i) {
    int fd = Open(i == 0 ? flagged : plain, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    want[i].resize(st.st_size);
    if (pread(fd, want[i].data(), st.st_size, 0) != st.st_size) return std::perror("pread"), 1;
    close(fd);
  }
  const size_t span = std::min(want[0].size(), want[1].size()) - 4096;
  const int n = Open(flagged, O_RDWR);  // generation 0: the flagged file
  std::atomic<uint64_t> gen{0};          // 4 * k + 0: flagged, 4 * k + 2: plain, odd: changing
  std::atomic<bool> stop{false};
  std::atomic<long> checked{0}, bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      uint64_t x = 88172645463325252ull + t;
      char buf[4096];
      while (!stop.load()) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const size_t off = x % span, len = 1 + (x >> 40) % sizeof buf;
        const uint64_t g1 = gen.load();
        const ssize_t r = pread(n, buf, len, off);
        const uint64_t g2 = gen.load();
        reads++;
        if (g1 != g2 || (g1 & 1) || r < 0) continue;
        checked++;
        const std::vector<char>& w = want[(g1 / 2) & 1];
        if (r != static_cast<ssize_t>(len) || std::memcmp(buf, w.data() + off, len) != 0) bad++;
      }
    });
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  int swaps = 0;
  for (; std::chrono::steady_clock::now() < until; ++swaps) {
    const bool to_plain = (gen.load() / 2) % 2 == 0;
    gen++;  // odd: changing hands
    const int src = Open(to_plain ? plain : flagged, O_RDWR);
    switch (swaps % 3) {
      case 0:
        if (dup2(src, n) != n) std::perror("dup2");
        break;
      case 1:
        if (dup3(src, n, O_CLOEXEC) != n) std::perror("dup3");
        break;
      default:  // the number is free for a moment: readers get EBADF (not checked). (Not
                // dup(): a racing examination may hold the lowest free number for a moment.)
        close(n);
        if (dup2(src, n) != n) std::perror("dup2 after close");
    }
    close(src);
    gen++;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  stop = true;
  for (auto& t : readers) t.join();
  close(n);
  std::printf("swap: %s, %s\n", swaps > 100 ? "many swaps" : "few swaps",
              checked.load() > 1000 ? "many checked reads" : "few checked reads");
  std::printf("swap: %ld bad reads\n", bad.load());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string c = argc > 2 ? argv[1] : "";
  if (c == "errors") return Errors(argv[2]);
  if (c == "direct" && argc > 3) return Direct(argv[2], argv[3]);
  if (c == "preflag") return Preflag(argv[2]);
  if (c == "threads") return Threads(argv[2]);
  if (c == "fork") return Fork(argv[2]);
  if (c == "exec") return Exec(argv[0], argv[2]);
  if (c == "exec-child" && argc > 4) return ExecChild(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  if (c == "reuse" && argc > 3) return Reuse(argv[2], argv[3]);
  if (c == "serve") return Serve(argv[2]);
  if (c == "stamp") return Stamp(argv[2], argc > 3 ? std::atoi(argv[3]) : 100);
  if (c == "swap" && argc > 3) return Swap(argv[2], argv[3]);
  std::fprintf(stderr, "usage: see the header of io_cases.cc\n");
  return 64;
}
