// SPDX-License-Identifier: BSD-3-Clause
#include "differential/generator.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>

namespace pmemfs::difftest {

namespace {

constexpr int kMaxSlots = 14;
// Test data the reference tree may hold before the generator prefers calls that free space
// (the pmemfs region is small; most of it is ballast).
constexpr int64_t kTreeBudget = 6 << 20;
constexpr int64_t kFalloc_WriteZeroes = 0x80;  // FALLOC_FL_WRITE_ZEROES (Linux 6.17), refused by both

const char kReadable[] = "abcdefghijklmnopqrstuvwxyz0123456789._-";

}  // namespace

Generator::Generator(uint64_t seed) : rng_(seed) {
  next_check_ = U(100, 400);
  next_remount_ = U(300, 2500);
}

uint64_t Generator::U(uint64_t lo, uint64_t hi) { return lo + rng_() % (hi - lo + 1); }
bool Generator::P(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

int Generator::Worker() { return static_cast<int>(U(0, 3)); }

std::string Generator::LongName(size_t len) {
  std::string s;
  if (P(0.5)) {
    // A run of one byte and a short tail: readable when printed ("x"*200+"ab").
    char c = P(0.7) ? kReadable[U(0, 25)] : static_cast<char>(U(1, 255));
    if (c == '/' || c == '.') c = 'x';
    size_t tail = std::min<size_t>(len, U(0, 4));
    s.assign(len - tail, c);
    while (s.size() < len) s.push_back(kReadable[U(0, sizeof kReadable - 2)]);
  } else if (P(0.5)) {
    while (s.size() < len) s.push_back(kReadable[U(0, sizeof kReadable - 2)]);
  } else {
    // Every byte a name may hold: 1..255 except '/'.
    while (s.size() < len) {
      char c = static_cast<char>(U(1, 255));
      if (c != '/') s.push_back(c);
    }
  }
  if (s == "." || s == "..") s = "x" + s;
  return s;
}

std::string Generator::NewName(bool fresh) {
  if (!fresh && !names_.empty() && P(0.45)) return Pick(names_);
  size_t len;
  uint64_t r = U(0, 99);
  static const size_t kEdges[] = {47, 48, 49, 50, 63, 64, 65, 111, 112, 113, 175, 176, 177, 239, 240, 254};
  if (r < 35) len = U(1, 8);
  else if (r < 55) len = kEdges[U(0, sizeof kEdges / sizeof kEdges[0] - 1)];
  else if (r < 78) len = U(1, 255);
  else if (r < 88) len = 255;
  else len = U(9, 40);
  std::string s = LongName(len);
  if (names_.size() < 300) names_.push_back(s);
  else names_[U(0, names_.size() - 1)] = s;
  return s;
}

std::string Generator::ExistingPath(Harness& h, int type_filter, bool allow_root) {
  const auto& tree = h.Tree();
  std::vector<const Node*> c;
  for (const auto& n : tree) {
    if (n.rel.empty() && !allow_root) continue;
    if (type_filter && static_cast<int>(n.st.mode & S_IFMT) != type_filter) continue;
    c.push_back(&n);
  }
  if (c.empty()) return allow_root ? "" : NewPath(h);
  return Pick(c)->rel;
}

std::string Generator::NewPath(Harness& h) {
  std::string dir = ExistingPath(h, S_IFDIR, true);
  // Depth is bounded by PATH_MAX: long names nest only a few levels.
  if (dir.size() > 2800) dir = "";
  std::string name = NewName();
  return dir.empty() ? name : dir + "/" + name;
}

std::string Generator::AnyPath(Harness& h, bool allow_root) {
  uint64_t r = U(0, 99);
  if (r < 62) return ExistingPath(h, 0, allow_root);
  if (r < 88) return NewPath(h);
  switch (U(0, 7)) {
    case 0: return ExistingPath(h, S_IFREG, false) + "/" + NewName();  // ENOTDIR
    case 1: return NewName(true) + "/" + NewName();                    // missing parent
    case 2: return ExistingPath(h, S_IFDIR, false) + "/";              // trailing slash
    case 3: return ExistingPath(h, S_IFLNK, false) + "/";              // follows the link
    case 4: {
      std::string d = ExistingPath(h, S_IFDIR, true);
      return (d.empty() ? "" : d + "/") + LongName(U(256, 300));       // ENAMETOOLONG
    }
    case 5: {
      std::string d = ExistingPath(h, S_IFDIR, false);
      return d + (P(0.5) ? "/." : "/..");
    }
    case 6: return ExistingPath(h, S_IFLNK, false) + "/" + NewName();  // through a symlink
    default: return allow_root ? "" : NewPath(h);
  }
}

// Symlink targets stay inside the tree: relative, never "..", so that following one on
// either side reaches the same place; the only absolute target names nothing.
std::string Generator::SymlinkTarget(Harness& h, const std::string& link_path) {
  std::string dir = link_path.substr(0, link_path.rfind('/') == std::string::npos ? 0 : link_path.rfind('/'));
  uint64_t r = U(0, 99);
  if (r < 40) {
    std::vector<std::string> below;
    for (const auto& n : h.Tree()) {
      if (dir.empty() && !n.rel.empty()) below.push_back(n.rel);
      else if (!dir.empty() && n.rel.size() > dir.size() + 1 && n.rel.compare(0, dir.size() + 1, dir + "/") == 0)
        below.push_back(n.rel.substr(dir.size() + 1));
    }
    if (!below.empty()) return Pick(below);
  }
  if (r < 60) return NewName();
  if (r < 68) return link_path.substr(link_path.rfind('/') == std::string::npos ? 0 : link_path.rfind('/') + 1);  // ELOOP
  if (r < 80) {
    size_t want = U(256, 4095);
    std::string t;
    while (t.size() < want) t += (t.empty() ? "" : "/") + NewName(true);
    return t.substr(0, want);
  }
  if (r < 84) return std::string(4096, 'l');  // ENAMETOOLONG
  if (r < 89) return "/nonexistent-difftest-target/" + NewName();
  if (r < 91) return "";
  return NewName() + "/" + NewName() + (P(0.3) ? "/" : "");
}

std::string Generator::XattrName() {
  static const char* kSuffixes[] = {"a", "b", "c", "data", "mime_type", "x"};
  std::string ns;
  uint64_t r = U(0, 99);
  if (r < 55) ns = "user.";
  else if (r < 80) ns = "trusted.";
  else if (r < 85) ns = "security.";
  else if (r < 90) return P(0.5) ? "user." : "trusted.";     // EINVAL
  else if (r < 95) return "other." + std::string(kSuffixes[U(0, 5)]);  // EOPNOTSUPP
  else return "user." + LongName(U(251, 260));                 // 255 is the limit: ERANGE past it
  if (P(0.7)) return ns + kSuffixes[U(0, 5)];
  return ns + LongName(U(1, 255 - ns.size()));
}

int64_t Generator::SizeOf(Harness& h, const std::string& rel) {
  for (const auto& n : h.Tree())
    if (n.rel == rel) return n.st.size;
  return 0;
}

int64_t Generator::Offset(int64_t size) {
  switch (U(0, 9)) {
    case 0: return 0;
    case 1: case 2: return static_cast<int64_t>(U(0, static_cast<uint64_t>(size) + 8192));
    case 3: case 4: return static_cast<int64_t>(U(0, static_cast<uint64_t>(size) / 4096 + 16)) * 4096;
    case 5: return std::max<int64_t>(0, size + static_cast<int64_t>(U(0, 200)) - 100);
    case 6: return static_cast<int64_t>(U(0, 64ull << 20));
    case 7: return static_cast<int64_t>(U(0, 1ull << 40));  // sparse (pmemfs allows 2^50; see README)
    case 8: return size;
    default: return static_cast<int64_t>(U(0, static_cast<uint64_t>(size) + 65536));
  }
}

int64_t Generator::Length() {
  static const int64_t kEdges[] = {4095, 4096, 4097, 8191, 8192, 65536, 65537, 131072};
  switch (U(0, 19)) {
    case 0: case 1: case 2: case 3: case 4: return static_cast<int64_t>(U(0, 100));
    case 5: case 6: case 7: case 8: return static_cast<int64_t>(U(1, 8192));
    case 9: case 10: case 11: return kEdges[U(0, 7)];
    case 12: case 13: case 14: return static_cast<int64_t>(U(8192, 256 << 10));
    case 15: case 16: return static_cast<int64_t>(U(256 << 10, 1 << 20));
    case 17: return 1 << 20;
    default: return static_cast<int64_t>(U(0, 4096));
  }
}

uint32_t Generator::Perms() {
  static const uint32_t kCommon[] = {0644, 0600, 0666, 0755, 0700, 0444, 0, 0777, 04755, 02755, 06755, 01777, 02775, 06555};
  return P(0.6) ? kCommon[U(0, sizeof kCommon / sizeof kCommon[0] - 1)] : static_cast<uint32_t>(U(0, 07777));
}

void Generator::Times(Op* op) {
  if (P(0.1)) {
    op->tnsec[0] = kNullTimes;
    return;
  }
  for (int i = 0; i < 2; ++i) {
    uint64_t r = U(0, 9);
    if (r < 2) op->tnsec[i] = UTIME_NOW;
    else if (r < 4) op->tnsec[i] = UTIME_OMIT;
    else {
      // Never within years of now: an explicit time is told from "now" by its value.
      op->tsec[i] = P(0.7) ? static_cast<int64_t>(U(0, 1400000000)) - (P(0.2) ? 2000000000 : 0)
                           : static_cast<int64_t>(U(2600000000ull, 1ull << 34));
      op->tnsec[i] = static_cast<int64_t>(U(0, 999999999));
    }
  }
}

std::optional<Op> Generator::BallastOp(Harness& h) {
  if (ops_ >= next_phase_) {
    // The band of free space moves: sometimes almost nothing is free, sometimes a few MiB.
    low_ = U(0, 96);
    high_ = low_ + U(32, P(0.3) ? 2048 : 512);
    next_phase_ = ops_ + U(200, 800);
  }
  uint64_t free = h.FreeBlocks();
  Op op;
  op.seed = rng_();
  if (free > high_) {
    op.kind = Kind::kBallastWrite;
    op.flags = P(0.5) ? 1 : 0;
    uint64_t want = std::min<uint64_t>((free - (low_ + high_) / 2) * 4096, 4u << 20);
    op.len = static_cast<int64_t>(std::max<uint64_t>(want, 4096));
    if (ballast_.empty() || P(0.4)) ballast_.push_back({"b" + std::to_string(next_ballast_++), 0});
    BallastFile& b = ballast_[U(0, ballast_.size() - 1)];
    op.str = b.name;
    // Append, or fill a hole punched earlier (first-fit then wraps around the bitmap).
    op.off = P(0.6) ? b.size : static_cast<int64_t>(U(0, static_cast<uint64_t>(b.size) / 4096)) * 4096;
    if (P(0.2)) op.off += static_cast<int64_t>(U(1, 4095));
    b.size = std::max(b.size, op.off + op.len);
    return op;
  }
  if (!ballast_.empty() && (free < low_ ? P(0.5) : P(0.01))) {
    size_t i = U(0, ballast_.size() - 1);
    op.str = ballast_[i].name;
    if (P(0.12)) {
      op.kind = Kind::kBallastUnlink;
      ballast_.erase(ballast_.begin() + static_cast<long>(i));
      return op;
    }
    op.kind = Kind::kBallastPunch;
    op.len = static_cast<int64_t>(U(1, 96)) * 4096 - (P(0.2) ? static_cast<int64_t>(U(1, 4095)) : 0);
    op.off = static_cast<int64_t>(U(0, static_cast<uint64_t>(ballast_[i].size) / 4096)) * 4096;
    return op;
  }
  return std::nullopt;
}

std::optional<Op> Generator::FdOp(Harness& h, int) {
  const auto& slots = h.slots();
  if (slots.empty()) return std::nullopt;
  auto it = slots.begin();
  std::advance(it, static_cast<long>(U(0, slots.size() - 1)));
  const int slot = it->first;
  const SlotInfo& s = it->second;
  Op op;
  op.worker = static_cast<int8_t>(s.worker);
  op.slot = static_cast<int16_t>(slot);
  op.seed = rng_();
  const int64_t size = SizeOf(h, s.path);
  const bool shrink = h.TreeBytes() > kTreeBudget;
  if (s.is_dir) {
    switch (U(0, 9)) {
      case 0: case 1: case 2: op.kind = Kind::kGetdents; break;
      case 3: op.kind = Kind::kFstat; break;
      case 4: op.kind = Kind::kFsync; break;
      case 5: op.kind = Kind::kFchmod, op.mode = Perms(); break;
      case 6: op.kind = Kind::kFsetxattr, op.str = XattrName(), op.len = static_cast<int64_t>(U(0, 200)); break;
      case 7: op.kind = Kind::kFlistxattr, op.len = 65536; break;
      case 8: op.kind = Kind::kWrite, op.len = 10; break;  // EBADF/EISDIR
      default: op.kind = Kind::kClose; break;
    }
    return op;
  }
  // An O_PATH descriptor holds the inode without an open file (as an open() that looked the
  // name up just before a rename replaced it): reaching it again, by /proc/self/fd or
  // readlinkat(fd, ""), must find the contents intact even after its name went.
  if ((s.flags & O_PATH) ? P(0.6) : P(0.02)) {
    op.kind = S_ISLNK(s.mode) || P(0.2) ? Kind::kFreadlink : Kind::kReopenRead;
    op.len = op.kind == Kind::kFreadlink ? (P(0.8) ? 4096 : static_cast<int64_t>(U(0, 16))) : Length() + (P(0.3) ? 4096 : 0);
    op.off = Offset(size);
    return op;
  }
  uint64_t r = U(0, 99);
  if (shrink && r < 30) r = P(0.5) ? 30 : 97;  // ftruncate small, or close and let unlink follow
  if (r < 18) {
    op.kind = P(0.5) ? Kind::kWrite : Kind::kPwrite;
    op.len = Length();
    op.off = Offset(size);
  } else if (r < 30) {
    op.kind = P(0.5) ? Kind::kRead : Kind::kPread;
    op.len = Length() + (P(0.3) ? 4096 : 0);
    op.off = Offset(size);
  } else if (r < 35) {
    op.kind = Kind::kFtruncate;
    op.len = shrink ? static_cast<int64_t>(U(0, 4096)) : P(0.03) ? -1 : P(0.7) ? Offset(size) : static_cast<int64_t>(U(0, 1ull << 40));
  } else if (r < 44) {
    op.kind = Kind::kFallocate;
    uint64_t m = U(0, 99);
    if (m < 28) op.flags = 0;
    else if (m < 46) op.flags = FALLOC_FL_KEEP_SIZE;
    else if (m < 66) op.flags = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    else if (m < 76) op.flags = FALLOC_FL_ZERO_RANGE;
    else if (m < 84) op.flags = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    else {
      // Modes the kernel or the filesystem refuses: all must answer alike.
      static const int64_t kRefused[] = {FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE,
                                         FALLOC_FL_UNSHARE_RANGE, kFalloc_WriteZeroes, FALLOC_FL_NO_HIDE_STALE,
                                         FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                         FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0x100};
      op.flags = kRefused[U(0, sizeof kRefused / sizeof kRefused[0] - 1)];
    }
    op.off = P(0.03) ? -1 : Offset(size);
    op.len = P(0.03) ? 0 : P(0.1) ? static_cast<int64_t>(U(1, 8)) << 20 : std::max<int64_t>(1, Length());
  } else if (r < 50) {
    // Both descriptors of one worker (descriptors are per process).
    std::vector<int> mine;
    for (const auto& [sl, info] : slots)
      if (info.worker == s.worker && !info.is_dir) mine.push_back(sl);
    op.kind = Kind::kCopyRange;
    op.slot2 = static_cast<int16_t>(Pick(mine));
    op.off = P(0.2) ? -1 : Offset(size);
    op.off2 = P(0.2) ? -1 : Offset(SizeOf(h, slots.at(op.slot2).path));
    op.len = Length();
  } else if (r < 54) {
    op.kind = Kind::kLseek;
    static const int64_t kWhence[] = {SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE, SEEK_DATA, SEEK_HOLE, 7};
    op.flags = kWhence[U(0, 7)];
    op.off = P(0.05) ? -static_cast<int64_t>(U(1, 100)) : op.flags == SEEK_CUR || op.flags == SEEK_END
                                                         ? static_cast<int64_t>(U(0, 8192)) - 4096
                                                         : Offset(size);
  } else if (r < 58) {
    op.kind = P(0.5) ? Kind::kFsync : Kind::kFdatasync;
  } else if (r < 64) {
    op.kind = Kind::kFstat;
  } else if (r < 67) {
    op.kind = Kind::kFchmod, op.mode = Perms();
  } else if (r < 70) {
    static const uint32_t kUids[] = {0, 1000, 1001, 4242, UINT32_MAX};
    static const uint32_t kGids[] = {0, 1000, 1001, 1002, 4242, UINT32_MAX};
    op.kind = Kind::kFchown, op.uid = kUids[U(0, 4)], op.gid = kGids[U(0, 5)];
  } else if (r < 73) {
    op.kind = Kind::kFutimens;
    Times(&op);
  } else if (r < 78) {
    op.kind = Kind::kFsetxattr;
    op.str = XattrName();
    uint64_t v = U(0, 99);
    op.len = static_cast<int64_t>(v < 40 ? U(0, 32) : v < 70 ? U(33, 512) : v < 85 ? U(513, 4000) : v < 97 ? U(4001, 65536) : 65537);
    op.flags = P(0.7) ? 0 : P(0.5) ? XATTR_CREATE : P(0.9) ? XATTR_REPLACE : XATTR_CREATE | XATTR_REPLACE;
  } else if (r < 81) {
    op.kind = Kind::kFgetxattr, op.str = XattrName(), op.len = P(0.6) ? 65536 : static_cast<int64_t>(U(0, 64));
  } else if (r < 83) {
    op.kind = Kind::kFlistxattr, op.len = P(0.7) ? 65536 : static_cast<int64_t>(U(0, 16));
  } else if (r < 85) {
    op.kind = Kind::kFremovexattr, op.str = XattrName();
  } else if (r < 87) {
    op.kind = Kind::kGetdents;  // ENOTDIR
  } else {
    op.kind = Kind::kClose;
  }
  return op;
}

Op Generator::PathOp(Harness& h) {
  Op op;
  op.worker = static_cast<int8_t>(Worker());
  op.seed = rng_();
  op.umask = P(0.7) ? 022 : P(0.5) ? 0 : static_cast<uint32_t>(U(0, 0777));
  const bool shrink = h.TreeBytes() > kTreeBudget;
  uint64_t r = U(0, 99);
  if (shrink && r < 40) r = P(0.6) ? 60 : 24;  // unlink, or truncate
  if (h.slots().size() < 4 && r >= 70 && P(0.5)) r = 0;  // keep descriptors open
  if (r < 16) {
    op.kind = Kind::kOpen;
    int slot = 0;
    while (slot < kMaxSlots && h.slots().count(slot)) ++slot;
    op.slot = static_cast<int16_t>(slot < kMaxSlots ? slot : static_cast<int>(U(0, kMaxSlots - 1)));
    bool fresh = P(0.35);
    op.path = fresh ? NewPath(h) : AnyPath(h, true);
    uint64_t a = U(0, 99);
    op.flags = a < 40 ? O_RDWR : a < 62 ? O_WRONLY : a < 99 ? O_RDONLY : O_ACCMODE;
    if (P(fresh ? 0.85 : 0.4)) op.flags |= O_CREAT;
    if ((op.flags & O_CREAT) && P(0.2)) op.flags |= O_EXCL;
    if (P(0.12)) op.flags |= O_TRUNC;
    if (P(0.15)) op.flags |= O_APPEND;
    if (P(0.08)) op.flags |= O_DIRECTORY;
    if (P(0.08)) op.flags |= O_NOFOLLOW;
    if (P(0.05)) op.flags |= O_NOATIME;
    if (P(0.03)) op.flags |= O_SYNC;
    if (P(0.03)) op.flags |= O_DSYNC;
    if (P(0.06)) op.flags = O_PATH | (P(0.5) ? O_NOFOLLOW : 0);
    if (P(0.015)) op.flags = __O_TMPFILE | O_DIRECTORY | (P(0.5) ? O_RDWR : O_WRONLY), op.path = ExistingPath(h, S_IFDIR, true);
    // Directories: mostly read-only opens (getdents, fstat, fchmod on a directory descriptor).
    for (const auto& n : h.Tree())
      if (n.rel == op.path && S_ISDIR(n.st.mode) && P(0.7)) op.flags = O_RDONLY | (P(0.5) ? O_DIRECTORY : 0);
    op.mode = Perms();
  } else if (r < 20) {
    op.kind = P(0.5) ? Kind::kStat : Kind::kLstat, op.path = AnyPath(h, true);
  } else if (r < 22) {
    op.kind = Kind::kAccess, op.path = AnyPath(h, true), op.mode = static_cast<uint32_t>(U(0, 7));
    op.flags = P(0.3) ? AT_EACCESS : 0;
  } else if (r < 25) {
    op.kind = Kind::kTruncate, op.path = AnyPath(h, false);
    int64_t size = SizeOf(h, op.path);
    op.len = shrink ? static_cast<int64_t>(U(0, 4096)) : P(0.03) ? -5 : P(0.8) ? Offset(size) : static_cast<int64_t>(U(0, 1ull << 40));
  } else if (r < 28) {
    op.kind = Kind::kChmod, op.path = AnyPath(h, false), op.mode = Perms();
  } else if (r < 31) {
    static const uint32_t kUids[] = {0, 1000, 1001, 4242, UINT32_MAX};
    static const uint32_t kGids[] = {0, 1000, 1001, 1002, 4242, UINT32_MAX};
    op.kind = Kind::kChown, op.path = AnyPath(h, false), op.uid = kUids[U(0, 4)], op.gid = kGids[U(0, 5)];
    op.flags = P(0.3) ? AT_SYMLINK_NOFOLLOW : 0;
  } else if (r < 34) {
    op.kind = Kind::kUtimens, op.path = AnyPath(h, false);
    Times(&op);
    op.flags = P(0.2) ? AT_SYMLINK_NOFOLLOW : 0;
  } else if (r < 39) {
    op.kind = Kind::kMkdir, op.path = P(0.85) ? NewPath(h) : AnyPath(h, false), op.mode = Perms();
  } else if (r < 42) {
    op.kind = Kind::kRmdir, op.path = P(0.7) ? ExistingPath(h, S_IFDIR, false) : AnyPath(h, false);
  } else if (r < 48) {
    op.kind = Kind::kUnlink, op.path = P(0.8) ? ExistingPath(h, 0, false) : AnyPath(h, false);
  } else if (r < 50) {
    op.kind = Kind::kMknod, op.path = P(0.85) ? NewPath(h) : AnyPath(h, false);
    uint64_t t = U(0, 9);
    uint32_t type = t < 4 ? S_IFIFO : t < 7 ? S_IFSOCK : t < 9 ? S_IFCHR : S_IFREG;
    op.mode = type | Perms();
    op.len = type == S_IFCHR ? (P(0.5) ? (int64_t{1} << 32 | 3) : static_cast<int64_t>(U(1, 200)) << 32 | static_cast<int64_t>(U(0, 255))) : 0;
  } else if (r < 54) {
    op.kind = Kind::kSymlink, op.path = P(0.85) ? NewPath(h) : AnyPath(h, false);
    op.str = SymlinkTarget(h, op.path);
  } else if (r < 56) {
    op.kind = Kind::kReadlink, op.path = P(0.7) ? ExistingPath(h, S_IFLNK, false) : AnyPath(h, false);
    op.len = P(0.8) ? 8192 : static_cast<int64_t>(U(1, 64));
  } else if (r < 59) {
    op.kind = Kind::kLink, op.path = P(0.7) ? ExistingPath(h, 0, false) : AnyPath(h, false);
    op.path2 = P(0.8) ? NewPath(h) : AnyPath(h, false);
    op.flags = P(0.2) ? AT_SYMLINK_FOLLOW : 0;
  } else if (r < 66) {
    op.kind = Kind::kRename;
    op.path = P(0.8) ? ExistingPath(h, 0, false) : AnyPath(h, false);
    uint64_t d = U(0, 99);
    if (d < 25 && !h.slots().empty()) {
      // Replace a file that is open somewhere.
      auto it = h.slots().begin();
      std::advance(it, static_cast<long>(U(0, h.slots().size() - 1)));
      op.path2 = it->second.path.empty() ? NewPath(h) : it->second.path;
    } else if (d < 50) {
      op.path2 = ExistingPath(h, 0, false);
    } else if (d < 92) {
      op.path2 = NewPath(h);
    } else {
      op.path2 = AnyPath(h, false);
    }
    uint64_t f = U(0, 99);
    op.flags = f < 60 ? 0 : f < 75 ? RENAME_NOREPLACE : f < 90 ? RENAME_EXCHANGE : f < 96 ? RENAME_WHITEOUT
               : RENAME_NOREPLACE | RENAME_EXCHANGE;
  } else if (r < 71) {
    op.kind = Kind::kSetxattr, op.path = AnyPath(h, false), op.str = XattrName();
    uint64_t v = U(0, 99);
    op.len = static_cast<int64_t>(v < 40 ? U(0, 32) : v < 70 ? U(33, 512) : v < 85 ? U(513, 4000) : v < 97 ? U(4001, 65536) : 65537);
    op.flags = (P(0.7) ? 0 : P(0.5) ? XATTR_CREATE : P(0.9) ? XATTR_REPLACE : XATTR_CREATE | XATTR_REPLACE) |
               (P(0.2) ? AT_SYMLINK_NOFOLLOW : 0);
  } else if (r < 74) {
    op.kind = Kind::kGetxattr, op.path = AnyPath(h, true), op.str = XattrName();
    op.len = P(0.5) ? 65536 : P(0.5) ? 0 : static_cast<int64_t>(U(0, 64));
    op.flags = P(0.2) ? AT_SYMLINK_NOFOLLOW : 0;
  } else if (r < 76) {
    op.kind = Kind::kListxattr, op.path = AnyPath(h, true), op.len = P(0.7) ? 65536 : static_cast<int64_t>(U(0, 16));
    op.flags = P(0.2) ? AT_SYMLINK_NOFOLLOW : 0;
  } else if (r < 79) {
    op.kind = Kind::kRemovexattr, op.path = AnyPath(h, false), op.str = XattrName();
    op.flags = P(0.2) ? AT_SYMLINK_NOFOLLOW : 0;
  } else {
    op.kind = Kind::kReaddir, op.path = P(0.8) ? ExistingPath(h, S_IFDIR, true) : AnyPath(h, true);
  }
  return op;
}

Op Generator::Next(Harness& h) {
  ++ops_;
  if (ops_ >= next_check_) {
    next_check_ = ops_ + U(150, 500);
    Op op;
    op.kind = Kind::kCheck;
    return op;
  }
  if (ops_ >= next_remount_) {
    next_remount_ = ops_ + U(500, 2500);
    Op op;
    op.kind = P(0.35) ? Kind::kKill : Kind::kRemount;
    return op;
  }
  if (auto b = BallastOp(h)) return *b;
  Op op;
  if (!h.slots().empty() && P(0.45)) {
    if (auto f = FdOp(h, -1)) op = *f;
    else op = PathOp(h);
  } else {
    op = PathOp(h);
  }
  op.probe = op.kind != Kind::kClose && P(0.08);
  return op;
}

}  // namespace pmemfs::difftest
