// SPDX-License-Identifier: BSD-3-Clause
// The differential tester's unit of work: one POSIX call (or one harness action) with all
// of its arguments, so that it can be sent to a worker process, executed on both targets,
// recorded, replayed and printed as a readable call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pmemfs::difftest {

enum class Kind : uint8_t {
  // Calls on a path (relative to the target's root), run by `worker`.
  kOpen, kStat, kLstat, kAccess, kTruncate, kChmod, kChown, kUtimens, kMkdir, kRmdir, kUnlink, kMknod,
  kSymlink, kReadlink, kLink, kRename, kSetxattr, kGetxattr, kListxattr, kRemovexattr, kReaddir,
  // Calls on a descriptor slot, run by the worker that opened it.
  kClose, kRead, kPread, kWrite, kPwrite, kLseek, kFtruncate, kFallocate, kCopyRange, kFsync, kFdatasync,
  kFstat, kFchmod, kFchown, kFutimens, kFsetxattr, kFgetxattr, kFlistxattr, kFremovexattr, kGetdents,
  // Reaching the inode a descriptor holds (also an O_PATH one) after its name may have gone:
  // open("/proc/self/fd/N", O_RDONLY|O_NONBLOCK) + pread + close, and readlinkat(fd, "").
  kReopenRead, kFreadlink,
  // Harness actions (not compared): pmemfs only, or both targets.
  kRemount,        // close every descriptor, unmount cleanly, fsck -n, mount, compare trees
  kKill,           // SIGKILL the daemon (descriptors still open), fsck -n, mount, compare trees
  kCheck,          // compare the two trees
  kBallastWrite,   // pmemfs only: pwrite (flags 0) or fallocate (flags 1) into .ballast/<str>
  kBallastPunch,   // pmemfs only: punch a hole in .ballast/<str>
  kBallastUnlink,  // pmemfs only: unlink .ballast/<str>
  kCount
};

const char* KindName(Kind k);
bool IsFdOp(Kind k);       // runs on op.slot
bool IsHarnessOp(Kind k);  // not a compared call
bool ChangesNames(Kind k); // may add, remove or rename a name (the generator's view goes stale)

// Bits of Outcome::probe: what changed between an lstat/fstat before and after the call.
enum Probe : uint32_t {
  kTargetBefore = 1, kTargetAfter = 2, kTargetMtime = 4, kTargetCtime = 8, kParentMtime = 16,
  kParentCtime = 32, kTargetSameInode = 64, kTargetSize = 128,
};

// utimensat: a tnsec of kNullTimes in slot 0 passes NULL (both times "now").
inline constexpr int64_t kNullTimes = -2;

struct Op {
  Kind kind = Kind::kStat;
  int8_t worker = 0;        // which worker process (and so which uid) runs it
  bool probe = false;       // record mtime/ctime changes of the target and its parent
  int16_t slot = -1;        // descriptor slot (open: the slot to fill)
  int16_t slot2 = -1;       // copy_file_range: output slot
  uint32_t mode = 0;        // open/mkdir/mknod/chmod mode, access mode
  uint32_t umask = 022;
  int64_t flags = 0;        // open flags, rename flags, at-flags, xattr flags, fallocate mode, whence
  int64_t off = 0, off2 = 0, len = 0;  // offsets and sizes (-1 off: use the file position)
  uint32_t uid = 0, gid = 0;           // chown arguments (uint32 max: -1)
  uint64_t seed = 0;        // data and xattr values: Fill(seed, len)
  int64_t tsec[2] = {0, 0}, tnsec[2] = {0, 0};
  std::string path, path2;  // relative to the root; "" is the root itself
  std::string str;          // xattr name, symlink target, ballast file name
};

// What a call returned on one target.
struct StatInfo {
  bool valid = false;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t nlink = 0, rdev = 0, ino = 0;
  int64_t size = 0, blocks = 0;
  int64_t atime_s = 0, atime_ns = 0, mtime_s = 0, mtime_ns = 0, ctime_s = 0, ctime_ns = 0;
};

struct Outcome {
  int64_t ret = 0;
  int err = 0;          // errno when ret == -1
  std::string data;     // bytes read, link target, xattr value, sorted name lists
  StatInfo st;          // stat calls
  int fd = -1;          // open: the descriptor in the worker (not compared)
  uint32_t probe = 0;   // Probe bits when op.probe
  bool synthetic = false;  // the worker did not run the call (slot not open there)
};

// Deterministic content for writes and xattr values: several styles (random, zeros,
// text with positions, sparse), chosen by the seed. A prefix of the content of a longer
// length: Fill(s, n) == Fill(s, m).substr(0, n) for n <= m (a short write on pmemfs is
// replayed on the reference as the same call with the shorter length).
std::string Fill(uint64_t seed, size_t len);

// Readable forms: `w2(uid 1000): fd3 = open("a/b", O_RDWR|O_CREAT, 0644)`.
std::string Quote(const std::string& s);  // C-escaped, long runs of one byte folded
std::string Describe(const Op& op);
std::string Describe(const Op& op, const Outcome& o);  // the result part: "= 0", "= -1 ENOENT"
std::string ErrName(int err);

// Wire format between the driver and its workers.
void Serialize(const Op& op, std::string* out);
bool Deserialize(const std::string& in, size_t* pos, Op* op);
void Serialize(const Outcome& o, std::string* out);
bool Deserialize(const std::string& in, size_t* pos, Outcome* o);

}  // namespace pmemfs::difftest
