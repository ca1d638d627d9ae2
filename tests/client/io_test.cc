// SPDX-License-Identifier: BSD-3-Clause
// Userspace read/write of flagged files (issue 13): libpmemfs's pmemfs_pread & co and the
// LD_PRELOAD shim's read/write family must give, call by call, what the system calls give
// through the mount, while serving what they can without entering the kernel. Every test
// runs the same program with and without the shim on twin files (same bytes, both flagged)
// and compares the transcripts and the files.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <sstream>

#include "mount/mount_fixture.h"
#include "testutil.h"

#ifndef PMEMFS_LIB_DIR
#error "PMEMFS_LIB_DIR must name the directory holding libpmemfs-preload.so"
#endif

namespace pmemfs::testing {
namespace {

const std::string kShim = "env LD_PRELOAD=" PMEMFS_LIB_DIR "/libpmemfs-preload.so ";
const std::string kNobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";

// Lines of `out` that do not start with `prefix`.
std::string Without(const std::string& out, const std::string& prefix) {
  std::istringstream in(out);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) kept += line + "\n";
  }
  return kept;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A program with a pipe to its stdin and from its stdout, for one question at a time.
class CoProcess {
 public:
  explicit CoProcess(const std::string& cmd) {
    // Close-on-exec: a later co-process must not inherit this one's pipe ends (it would
    // keep this one's stdin open, and Finish would wait for ever).
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[1]);
      ::close(out[0]);
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = ::fdopen(out[0], "r");
  }
  ~CoProcess() { Finish(); }
  std::string Ask(const std::string& line) {
    std::string l = line + "\n";
    if (::write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return "(write failed)";
    char buf[4096];
    if (!std::fgets(buf, sizeof buf, from_)) return "(no answer)";
    std::string a(buf);
    if (!a.empty() && a.back() == '\n') a.pop_back();
    return a;
  }
  int Finish() {
    if (pid_ <= 0) return status_;
    ::close(to_);
    std::fclose(from_);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  FILE* from_ = nullptr;
  int status_ = -1;
};

class UserspaceIoTest : public ClientMountTest {
 protected:
  std::string Run(const std::string& cmd) {
    CommandResult r = In(cmd);
    EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
    return r.output;
  }
  // Twin files `a` and `b`: the same `bytes` random bytes, flagged (unless `flag` is false),
  // mode 0666.
  void Twins(size_t bytes, std::mt19937_64& rng, bool flag = true) {
    std::string data(bytes, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    for (const char* f : {"a", "b"}) {
      if (IsFlagged(f)) Run(std::string("setfattr -x user.pmemfs.immutable_extents ") + f);
      ASSERT_TRUE(WriteFile(P(f), data));
      Run(std::string("chmod 666 ") + f);
      if (flag) Run(std::string("setfattr -n user.pmemfs.immutable_extents -v 1 ") + f);
    }
  }
  bool IsFlagged(const std::string& f) {
    char v[16];
    ssize_t n = ::getxattr(P(f).c_str(), "user.pmemfs.immutable_extents", v, sizeof v);
    return n > 0 && !(n == 1 && v[0] == '0');
  }
  // io_sequence on `a` without the shim and on `b` with it (`prefix` runs both, e.g. as
  // another user); expects the same transcript and the same file. Returns the transcript.
  std::string CompareSequence(uint64_t seed, int count, const std::string& opts = "",
                              const std::string& prefix = "") {
    const std::string seq = Bin("io_sequence");
    const std::string args = " " + std::to_string(seed) + " " + std::to_string(count) + " " + opts;
    CommandResult plain = In(prefix + seq + " a" + args);
    CommandResult shim = In(prefix + kShim + seq + " b" + args);
    EXPECT_EQ(plain.status, 0) << plain.output;
    EXPECT_EQ(shim.status, 0) << shim.output;
    EXPECT_EQ(plain.output, shim.output) << "seed " << seed << " " << opts;
    EXPECT_TRUE(ReadFile(P("a")) == ReadFile(P("b"))) << "seed " << seed << ": the files differ";
    return plain.output;
  }
  // io_cases COMMAND on `a` without the shim and on `b` with it; the outputs must match
  // (lines starting with "direct" aside). Returns the shim's output.
  std::string CompareCase(const std::string& cmd, const std::string& prefix = "") {
    CommandResult plain = In(prefix + Bin("io_cases") + " " + cmd + " a");
    CommandResult shim = In(prefix + kShim + Bin("io_cases") + " " + cmd + " b");
    EXPECT_EQ(plain.status, 0) << plain.output;
    EXPECT_EQ(shim.status, 0) << shim.output;
    EXPECT_EQ(Without(plain.output, "direct"), Without(shim.output, "direct")) << cmd;
    EXPECT_TRUE(ReadFile(P("a")) == ReadFile(P("b"))) << cmd << ": the files differ";
    return shim.output;
  }
};

// The differential test: seeded random sequences of read, write, pread, pwrite, readv,
// writev, preadv, pwritev, preadv2/pwritev2 with flags, lseek, dup/dup2/dup3/F_DUPFD,
// F_SETFL O_APPEND, fsync, fork and descriptors of every open mode, near and past EOF.
TEST_F(UserspaceIoTest, SequencesGiveTheSameResultsWithAndWithoutTheShim) {
  std::mt19937_64 rng = SeededRng();
  for (int i = 0; i < 6; ++i) {
    const uint64_t seed = rng();
    Twins(300000 + rng() % 5000, rng);
    std::string out = CompareSequence(seed, 300);
    EXPECT_GT(Count(out, " -> -1 EPERM"), 0u) << "the sequence must reach EOF and O_APPEND";
    if (HasFailure()) break;
  }
}

TEST_F(UserspaceIoTest, LibraryFunctionsGiveTheSystemCallsResults) {
  std::mt19937_64 rng = SeededRng();
  for (int i = 0; i < 3; ++i) {
    const uint64_t seed = rng();
    Twins(200000 + rng() % 5000, rng);
    const std::string seq = Bin("io_sequence");
    const std::string args = " " + std::to_string(seed) + " 300";
    CommandResult plain = In(seq + " a" + args);
    CommandResult lib = In(seq + " b" + args + " --lib");
    EXPECT_EQ(plain.output, lib.output) << "seed " << seed;
    EXPECT_TRUE(ReadFile(P("a")) == ReadFile(P("b"))) << "seed " << seed;
    if (HasFailure()) break;
  }
}

// Not vacuous: with the shim, fio's pread/pwrite and dd's read() of the flagged file never
// reach the kernel; without it every one does.
TEST_F(UserspaceIoTest, ShimServesReadsAndWritesWithoutSystemCalls) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  const std::string trace = "strace -f -qq -y -e trace=read,pread64,pwrite64 -o " + m_.dir() + "/trace ";
  // A buffer pattern: fio's random buffer contents differ between runs.
  const std::string fio = "fio --name=s --rw=randrw --bs=4k --size=1M --io_size=2M --ioengine=psync "
                          "--randseed=7 --buffer_pattern=0x5a6b7c8d --output=/dev/null --filename=";
  Run(trace + fio + "a");
  const size_t plain = Count(ReadFile(m_.dir() + "/trace"), "/a>");
  Run(trace + kShim + fio + "b");
  const size_t shim = Count(ReadFile(m_.dir() + "/trace"), "/b>");
  EXPECT_GE(plain, 512u);
  EXPECT_EQ(shim, 0u) << ReadFile(m_.dir() + "/trace").substr(0, 2000);
  Run(trace + kShim + "dd if=b of=/dev/null bs=64k status=none");
  EXPECT_EQ(Count(ReadFile(m_.dir() + "/trace"), "/b>"), 0u) << "dd's read() of the flagged file";
  EXPECT_TRUE(ReadFile(P("a")) == ReadFile(P("b")));
}

TEST_F(UserspaceIoTest, EofPartialReadsAndErrorsAreTheKernels) {
  std::mt19937_64 rng = SeededRng();
  Twins(300001, rng);
  std::string out = CompareCase("errors");
  for (const char* line : {"pread at EOF-100 n=4096 (short) -> 100", "pread past EOF -> 0",
                           "pwrite crossing EOF (EPERM) -> -1 EPERM", "write crossing EOF (EPERM) -> -1 EPERM",
                           "offset unchanged -> 299991", "read at EOF-10 (short) -> 10",
                           "pwrite on O_RDONLY (EBADF) -> -1 EBADF", "write on O_APPEND (EPERM) -> -1 EPERM",
                           "pwrite on O_APPEND (EPERM) -> -1 EPERM", "pwrite after F_SETFL -> 8",
                           "pwrite after F_SETFL O_APPEND (EPERM) -> -1 EPERM",
                           "pread on O_WRONLY (EBADF) -> -1 EBADF"})
    EXPECT_NE(out.find(std::string(line) + "\n"), std::string::npos) << "missing '" << line << "' in\n" << out;
  for (const char* mode : {"r", "rw"})
    EXPECT_EQ(Run(kShim + Bin("io_cases") + " direct b " + mode), std::string("direct ") + mode + ": " + mode + "\n");
  EXPECT_NE(Run(kShim + Bin("io_cases") + " direct b w").find("direct w: kernel"), std::string::npos);
}

TEST_F(UserspaceIoTest, ThreadsShareTheFileOffsetAsTheKernelDoes) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  std::string out = CompareCase("threads");
  EXPECT_NE(out.find("pwrite/pread threads: 0 mismatches"), std::string::npos) << out;
  EXPECT_NE(out.find("256 of 256 blocks read exactly once, 0 bad reads"), std::string::npos) << out;
}

TEST_F(UserspaceIoTest, ForkAndExecKeepTheKernelsFileOffset) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  std::string out = CompareCase("fork");
  EXPECT_NE(out.find("parent: offset after the child -> 110"), std::string::npos) << out;
  EXPECT_NE(out.find("parent reads 'from-child'"), std::string::npos) << out;
  out = CompareCase("exec");
  EXPECT_NE(out.find("after exec: read on the closed-on-exec number -> -1 EBADF"), std::string::npos) << out;
  EXPECT_NE(out.find("after exec: offset of the inherited descriptor -> 1234"), std::string::npos) << out;
  EXPECT_NE(out.find("after exec: 'exec'"), std::string::npos) << out;
  // Nothing holds the lease once the programs are gone: the flag can be cleared.
  Run("setfattr -n user.pmemfs.immutable_extents -v 0 b");
}

TEST_F(UserspaceIoTest, ReusedDescriptorNumbersNameTheirNewFile) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  Run("head -c 64K /dev/zero > p1 && head -c 64K /dev/zero > p2");
  CommandResult plain = In(Bin("io_cases") + " reuse a p1");
  CommandResult shim = In(kShim + Bin("io_cases") + " reuse b p2");
  EXPECT_EQ(plain.output, shim.output);
  EXPECT_EQ(Count(shim.output, "reads 'plain'"), 3u) << shim.output;
  EXPECT_EQ(Count(shim.output, "flagged holds 'FLAGGED'"), 3u) << shim.output;
  EXPECT_EQ(Count(shim.output, "same number 1"), 3u) << shim.output;
  EXPECT_EQ(ReadFile(P("p2")).substr(0, 5), "plain");
}

// A descriptor opened before the flag was set reads and writes through the kernel's page
// cache: it stays with the kernel, and while it is open, so do writes through the others.
TEST_F(UserspaceIoTest, DescriptorOpenedBeforeTheFlagStaysWithTheKernel) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng, /*flag=*/false);
  std::string out = CompareCase("preflag");
  EXPECT_NE(out.find("direct opened before the flag: kernel"), std::string::npos) << out;
  EXPECT_NE(out.find("direct opened after, while the other is open: r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("earlier descriptor reads 'later'"), std::string::npos) << out;
  EXPECT_NE(out.find("later descriptor reads 'early'"), std::string::npos) << out;
  EXPECT_NE(out.find("direct opened after both closed: rw"), std::string::npos) << out;
  for (int i = 0; i < 3; ++i) {
    Twins(300000 + rng() % 5000, rng, /*flag=*/false);
    CompareSequence(rng(), 200, "--flag-after-open");
    if (HasFailure()) break;
  }
}

// Bytes written by a process under the shim are read at once through the mount by a
// process without it, and the reverse; two processes under the shim see each other too.
TEST_F(UserspaceIoTest, CoherentWithReadAndWriteThroughTheMount) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  CoProcess shim(kShim + Bin("io_cases") + " serve " + P("a"));
  CoProcess shim2(kShim + Bin("io_cases") + " serve " + P("a"));
  CoProcess plain(Bin("io_cases") + " serve " + P("a"));
  ASSERT_EQ(shim.Ask("direct"), "rw");
  ASSERT_EQ(shim2.Ask("direct"), "rw");
  for (int i = 0; i < 50; ++i) {
    const std::string off = std::to_string(rng() % ((1 << 20) - 16));
    const std::string text = "v" + std::to_string(rng());
    const std::string len = std::to_string(text.size());
    switch (i % 3) {
      case 0:
        ASSERT_EQ(shim.Ask("w " + off + " " + text), len);
        EXPECT_EQ(plain.Ask("r " + off + " " + len), text) << "written in userspace, read through the mount";
        EXPECT_EQ(shim2.Ask("r " + off + " " + len), text);
        break;
      case 1:
        ASSERT_EQ(plain.Ask("w " + off + " " + text), len);
        EXPECT_EQ(shim.Ask("r " + off + " " + len), text) << "written through the mount, read in userspace";
        break;
      default:
        ASSERT_EQ(shim2.Ask("w " + off + " " + text), len);
        EXPECT_EQ(shim.Ask("r " + off + " " + len), text);
        EXPECT_EQ(ReadFile(P("a")).substr(std::stoul(off), text.size()), text) << "this process, read()";
    }
  }
  EXPECT_EQ(shim.Finish(), 0);
  EXPECT_EQ(shim2.Finish(), 0);
  EXPECT_EQ(plain.Finish(), 0);
}

// While a process under the shim holds a descriptor it has used, the flag cannot be
// cleared (its lease); once it closes it, it can.
TEST_F(UserspaceIoTest, TheLeaseLastsAsLongAsTheDescriptor) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  CoProcess shim(kShim + Bin("io_cases") + " serve " + P("b"));
  ASSERT_EQ(shim.Ask("direct"), "rw");
  CommandResult busy = In("setfattr -n user.pmemfs.immutable_extents -v 0 b");
  EXPECT_NE(busy.status, 0);
  EXPECT_NE(busy.output.find("busy"), std::string::npos) << busy.output;
  EXPECT_EQ(shim.Ask("close"), "0");
  Run("setfattr -n user.pmemfs.immutable_extents -v 0 b");
  EXPECT_EQ(shim.Finish(), 0);
}

// A descriptor number that another thread points at another file (dup2, dup3, close and
// dup) serves that file from then on: the shim forgets what it knew about the number.
TEST_F(UserspaceIoTest, DescriptorNumbersChangingFilesUnderReadingThreads) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  Run("head -c 1M /dev/urandom > p");
  std::string out = Run(kShim + Bin("io_cases") + " swap b p");
  EXPECT_NE(out.find("swap: many swaps, many checked reads"), std::string::npos) << out;
  EXPECT_NE(out.find("swap: 0 bad reads"), std::string::npos) << out;
  out = Run(Bin("io_cases") + " swap a p");
  EXPECT_NE(out.find("swap: 0 bad reads"), std::string::npos) << "without the shim: " << out;
}

// mtime and ctime follow writes made in userspace: at the first write, then at most once a
// second while writing, and at fsync and close (PMEMFS_IOC_TOUCH).
TEST_F(UserspaceIoTest, TimestampsFollowWritesInUserspace) {
  std::mt19937_64 rng = SeededRng();
  Twins(1 << 20, rng);
  auto mtime = [&] {
    struct stat st {};
    EXPECT_EQ(::stat(P("b").c_str(), &st), 0);
    return st.st_mtim.tv_sec;
  };
  auto ctime = [&] {
    struct stat st {};
    EXPECT_EQ(::stat(P("b").c_str(), &st), 0);
    return st.st_ctim.tv_sec;
  };
  const time_t kOld = 946684800;  // 2000-01-01
  auto set_old = [&] {  // through the mount, as touch -m -d would
    const timespec times[2] = {{0, UTIME_OMIT}, {kOld, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, P("b").c_str(), times, 0), 0);
  };
  CoProcess shim(kShim + Bin("io_cases") + " serve " + P("b"));
  ASSERT_EQ(shim.Ask("direct"), "rw");
  set_old();
  const time_t start = ::time(nullptr);
  ASSERT_EQ(shim.Ask("w 100 first"), "5");
  EXPECT_GE(mtime(), start) << "the first write sets mtime";
  EXPECT_GE(ctime(), start);
  set_old();
  ASSERT_EQ(shim.Ask("w 200 second"), "6");
  EXPECT_EQ(mtime(), kOld) << "a write within a second of the last touch leaves it to later";
  ASSERT_EQ(shim.Ask("fsync"), "0");
  EXPECT_GE(mtime(), start) << "fsync brings mtime up to date";
  set_old();
  ::usleep(1100 * 1000);
  ASSERT_EQ(shim.Ask("w 300 third"), "5");
  EXPECT_GE(mtime(), start + 1) << "a write a second after the last touch sets mtime";
  set_old();
  ASSERT_EQ(shim.Ask("w 400 fourth"), "6");
  EXPECT_EQ(mtime(), kOld);
  ASSERT_EQ(shim.Ask("close"), "0");
  EXPECT_GE(mtime(), start + 1) << "close brings mtime up to date";
  EXPECT_EQ(shim.Finish(), 0);
  // At most one touch a second (plus the first and the one at close) under a stream of
  // writes: counted on the ioctl's number under strace.
  const std::string trace = m_.dir() + "/touch-trace";
  Run("strace -f -qq --seccomp-bpf -e trace=ioctl -o " + trace + " " + kShim + Bin("io_cases") + " stamp b 200000");
  const std::string t = ReadFile(trace);
  const size_t touches = Count(t, "0x52, 0x8)");
  EXPECT_GE(touches, 2u) << t.substr(0, 2000);
  EXPECT_LE(touches, 12u) << "200,000 writes must not touch each time";
}

// On a read-only mount the lease allows reading only: reads in userspace, and writes (and
// O_RDWR opens) get the kernel's EROFS/EBADF as without the shim.
TEST_F(UserspaceIoTest, ReadOnlyMountServesReadsOnly) {
  std::mt19937_64 rng = SeededRng();
  Twins(300000, rng);
  ASSERT_TRUE(m_.Remount("allow_other,ro")) << m_.last_output();
  EXPECT_EQ(Run(kShim + Bin("io_cases") + " direct b r"), "direct r: r\n");
  for (int i = 0; i < 2; ++i) CompareSequence(rng(), 200);
  EXPECT_NE(In(kShim + Bin("io_cases") + " direct b rw").status, 0) << "O_RDWR on a read-only mount";
}

// A user who cannot open the region gets no lease: every call goes to the kernel, with the
// kernel's results.
TEST_F(UserspaceIoTest, UserWithoutRegionAccessGetsTheKernel) {
  std::mt19937_64 rng = SeededRng();
  Twins(300000, rng);
  ASSERT_EQ(::chmod(m_.region().c_str(), 0600), 0);
  ASSERT_EQ(::chmod(m_.dir().c_str(), 0755), 0);
  std::string out = Run(kNobody + kShim + Bin("io_cases") + " direct b rw");
  EXPECT_NE(out.find("direct rw: kernel: mapping lease refused: Permission denied"), std::string::npos) << out;
  for (int i = 0; i < 2; ++i) CompareSequence(rng(), 200, "", kNobody);
  // The same user with the region's group can: the test can tell the difference.
  ASSERT_EQ(Sh("chown 0:4242 " + m_.region() + " && chmod 660 " + m_.region()).status, 0);
  EXPECT_EQ(Run("setpriv --reuid=65534 --regid=65534 --groups=4242 " + kShim + Bin("io_cases") + " direct b rw"),
            "direct rw: rw\n");
}

}  // namespace
}  // namespace pmemfs::testing
