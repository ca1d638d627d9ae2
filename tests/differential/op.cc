// SPDX-License-Identifier: BSD-3-Clause
#include "differential/op.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

namespace pmemfs::difftest {

namespace {

struct KindInfo {
  const char* name;
  bool fd, harness, names;
};

constexpr KindInfo kKinds[] = {
    {"open", false, false, true},         {"stat", false, false, false},
    {"lstat", false, false, false},       {"faccessat", false, false, false},
    {"truncate", false, false, false},    {"chmod", false, false, false},
    {"fchownat", false, false, false},    {"utimensat", false, false, false},
    {"mkdir", false, false, true},        {"rmdir", false, false, true},
    {"unlink", false, false, true},       {"mknod", false, false, true},
    {"symlink", false, false, true},      {"readlink", false, false, false},
    {"linkat", false, false, true},       {"renameat2", false, false, true},
    {"setxattr", false, false, false},    {"getxattr", false, false, false},
    {"listxattr", false, false, false},   {"removexattr", false, false, false},
    {"readdir", false, false, false},     {"close", true, false, false},
    {"read", true, false, false},         {"pread", true, false, false},
    {"write", true, false, false},        {"pwrite", true, false, false},
    {"lseek", true, false, false},        {"ftruncate", true, false, false},
    {"fallocate", true, false, false},    {"copy_file_range", true, false, false},
    {"fsync", true, false, false},        {"fdatasync", true, false, false},
    {"fstat", true, false, false},        {"fchmod", true, false, false},
    {"fchown", true, false, false},       {"futimens", true, false, false},
    {"fsetxattr", true, false, false},    {"fgetxattr", true, false, false},
    {"flistxattr", true, false, false},   {"fremovexattr", true, false, false},
    {"getdents", true, false, false},     {"reopen+pread", true, false, false},
    {"readlinkat", true, false, false},   {"remount", false, true, true},
    {"kill-daemon", false, true, true},   {"check", false, true, false},
    {"ballast-write", false, true, false}, {"ballast-punch", false, true, false},
    {"ballast-unlink", false, true, false},
};
static_assert(sizeof(kKinds) / sizeof(kKinds[0]) == static_cast<size_t>(Kind::kCount));

const KindInfo& Info(Kind k) { return kKinds[static_cast<size_t>(k)]; }

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string Flags(int64_t v, std::initializer_list<std::pair<int64_t, const char*>> names, const char* zero) {
  std::string out;
  for (auto& [bit, name] : names) {
    if (bit != 0 && (v & bit) == bit) {
      if (!out.empty()) out += "|";
      out += name;
      v &= ~bit;
    }
  }
  if (v != 0) {
    if (!out.empty()) out += "|";
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    out += buf;
  }
  return out.empty() ? zero : out;
}

std::string OpenFlags(int64_t f) {
  std::string acc = (f & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : (f & O_ACCMODE) == O_WRONLY ? "O_WRONLY"
                    : (f & O_ACCMODE) == O_RDWR ? "O_RDWR" : "O_ACCMODE";
  int64_t rest = f & ~int64_t{O_ACCMODE} & ~int64_t{O_NONBLOCK | O_CLOEXEC};
  // O_TMPFILE includes O_DIRECTORY: name it first.
  std::string more = Flags(rest, {{__O_TMPFILE | O_DIRECTORY, "O_TMPFILE"}, {O_CREAT, "O_CREAT"}, {O_EXCL, "O_EXCL"},
                                  {O_TRUNC, "O_TRUNC"}, {O_APPEND, "O_APPEND"}, {O_DIRECTORY, "O_DIRECTORY"},
                                  {O_NOFOLLOW, "O_NOFOLLOW"}, {O_NOATIME, "O_NOATIME"}, {O_SYNC, "O_SYNC"},
                                  {O_DSYNC, "O_DSYNC"}, {O_PATH, "O_PATH"}},
                         "");
  return more.empty() ? acc : acc + "|" + more;
}

std::string Oct(uint32_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", m);
  return buf;
}

std::string Id(uint32_t v) { return v == UINT32_MAX ? "-1" : std::to_string(v); }

std::string Fd(int slot) { return "fd" + std::to_string(slot); }

std::string Time(int64_t s, int64_t ns) {
  if (ns == UTIME_NOW) return "UTIME_NOW";
  if (ns == UTIME_OMIT) return "UTIME_OMIT";
  return "{" + std::to_string(s) + ", " + std::to_string(ns) + "}";
}

std::string Data(const Op& op) { return "<" + std::to_string(op.len) + " bytes of seed " + std::to_string(op.seed) + ">"; }

std::string AtNoFollow(int64_t flags) { return (flags & AT_SYMLINK_NOFOLLOW) ? ", AT_SYMLINK_NOFOLLOW" : ""; }

std::string XattrCall(const Op& op, const char* plain, const char* nofollow) {
  return std::string((op.flags & AT_SYMLINK_NOFOLLOW) ? nofollow : plain) + "(" + Quote(op.path);
}

std::string XattrFlags(int64_t f) {
  return Flags(f & (XATTR_CREATE | XATTR_REPLACE), {{XATTR_CREATE, "XATTR_CREATE"}, {XATTR_REPLACE, "XATTR_REPLACE"}}, "0");
}

}  // namespace

const char* KindName(Kind k) { return Info(k).name; }
bool IsFdOp(Kind k) { return Info(k).fd; }
bool IsHarnessOp(Kind k) { return Info(k).harness; }
bool ChangesNames(Kind k) { return Info(k).names; }

std::string Fill(uint64_t seed, size_t len) {
  std::string out(len, '\0');
  uint64_t x = seed;
  switch (SplitMix(x) % 5) {
    case 0:  // zeros: data that must not be confused with a hole is written as zeros too
      break;
    case 1:  // text stamped with its own position, so a misplaced block is recognisable
      for (size_t i = 0; i < len;) {
        char buf[40];
        int n = std::snprintf(buf, sizeof buf, "[%llx@%zu]", static_cast<unsigned long long>(seed & 0xffff), i);
        for (int j = 0; j < n && i < len; ++j) out[i++] = buf[j];
      }
      break;
    case 2:  // sparse: mostly zeros, a non-zero byte every few hundred
      for (size_t i = SplitMix(x) % 512; i < len; i += 1 + SplitMix(x) % 700) out[i] = char(1 + SplitMix(x) % 255);
      break;
    default:  // random bytes
      for (size_t i = 0; i < len; i += 8) {
        uint64_t v = SplitMix(x);
        std::memcpy(&out[i], &v, std::min<size_t>(8, len - i));
      }
  }
  return out;
}

std::string Quote(const std::string& s) {
  auto esc = [](unsigned char c) {
    if (c == '"' || c == '\\') return std::string("\\") + char(c);
    if (c >= 0x20 && c < 0x7f) return std::string(1, char(c));
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    return std::string(buf);
  };
  // Pieces joined by '+': literal runs, and "x"*49 for a byte repeated 8 times or more.
  std::vector<std::string> pieces;
  std::string lit;
  for (size_t i = 0; i < s.size();) {
    size_t run = 1;
    while (i + run < s.size() && s[i + run] == s[i]) ++run;
    if (run >= 8) {
      if (!lit.empty()) pieces.push_back("\"" + lit + "\""), lit.clear();
      pieces.push_back("\"" + esc(static_cast<unsigned char>(s[i])) + "\"*" + std::to_string(run));
      i += run;
    } else {
      lit += esc(static_cast<unsigned char>(s[i++]));
    }
  }
  if (!lit.empty() || pieces.empty()) pieces.push_back("\"" + lit + "\"");
  std::string out;
  for (const auto& p : pieces) out += (out.empty() ? "" : "+") + p;
  if (s.size() > 60) out += " (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string ErrName(int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY)
    E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ETXTBSY) E(EFBIG)
    E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY) E(ELOOP)
    E(ENODATA) E(EOPNOTSUPP) E(EOVERFLOW) E(EUCLEAN) E(ENOTCONN) E(EBADMSG) E(ENOTTY) E(EINTR)
    E(ETIMEDOUT) E(ECHILD)
#undef E
    default: return "errno " + std::to_string(err);
  }
}

std::string Describe(const Op& op) {
  std::string who;
  if (!IsHarnessOp(op.kind)) who = "w" + std::to_string(op.worker) + ": ";
  std::string um = (op.kind == Kind::kOpen && (op.flags & O_CREAT)) || op.kind == Kind::kMkdir || op.kind == Kind::kMknod
                       ? "   [umask " + Oct(op.umask) + "]"
                       : "";
  std::string p = Quote(op.path);
  switch (op.kind) {
    case Kind::kOpen:
      return who + Fd(op.slot) + " = open(" + p + ", " + OpenFlags(op.flags) +
             ((op.flags & O_CREAT) || (op.flags & __O_TMPFILE) == __O_TMPFILE ? ", " + Oct(op.mode) : "") + ")" + um;
    case Kind::kStat: return who + "stat(" + p + ")";
    case Kind::kLstat: return who + "lstat(" + p + ")";
    case Kind::kAccess:
      return who + "faccessat(" + p + ", " + Flags(op.mode, {{R_OK, "R_OK"}, {W_OK, "W_OK"}, {X_OK, "X_OK"}}, "F_OK") +
             ((op.flags & AT_EACCESS) ? ", AT_EACCESS" : "") + ")";
    case Kind::kTruncate: return who + "truncate(" + p + ", " + std::to_string(op.len) + ")";
    case Kind::kChmod: return who + "chmod(" + p + ", " + Oct(op.mode) + ")";
    case Kind::kChown: return who + "fchownat(" + p + ", " + Id(op.uid) + ", " + Id(op.gid) + AtNoFollow(op.flags) + ")";
    case Kind::kUtimens:
    case Kind::kFutimens: {
      std::string times = op.tnsec[0] == kNullTimes ? "NULL" : "[" + Time(op.tsec[0], op.tnsec[0]) + ", " + Time(op.tsec[1], op.tnsec[1]) + "]";
      if (op.kind == Kind::kFutimens) return who + "futimens(" + Fd(op.slot) + ", " + times + ")";
      return who + "utimensat(" + p + ", " + times + AtNoFollow(op.flags) + ")";
    }
    case Kind::kMkdir: return who + "mkdir(" + p + ", " + Oct(op.mode) + ")" + um;
    case Kind::kRmdir: return who + "rmdir(" + p + ")";
    case Kind::kUnlink: return who + "unlink(" + p + ")";
    case Kind::kMknod:
      return who + "mknod(" + p + ", " + Oct(op.mode) + ", makedev(" + std::to_string(op.len >> 32) + ", " +
             std::to_string(op.len & 0xffffffff) + "))" + um;
    case Kind::kSymlink: return who + "symlink(" + Quote(op.str) + ", " + p + ")";
    case Kind::kReadlink: return who + "readlink(" + p + ", bufsize " + std::to_string(op.len) + ")";
    case Kind::kLink:
      return who + "linkat(" + p + ", " + Quote(op.path2) + ((op.flags & AT_SYMLINK_FOLLOW) ? ", AT_SYMLINK_FOLLOW" : "") + ")";
    case Kind::kRename:
      return who + "renameat2(" + p + ", " + Quote(op.path2) + ", " +
             Flags(op.flags, {{RENAME_NOREPLACE, "RENAME_NOREPLACE"}, {RENAME_EXCHANGE, "RENAME_EXCHANGE"},
                              {RENAME_WHITEOUT, "RENAME_WHITEOUT"}}, "0") + ")";
    case Kind::kSetxattr:
      return who + XattrCall(op, "setxattr", "lsetxattr") + ", " + Quote(op.str) + ", " + Data(op) + ", " + XattrFlags(op.flags) + ")";
    case Kind::kGetxattr: return who + XattrCall(op, "getxattr", "lgetxattr") + ", " + Quote(op.str) + ", bufsize " + std::to_string(op.len) + ")";
    case Kind::kListxattr: return who + XattrCall(op, "listxattr", "llistxattr") + ", bufsize " + std::to_string(op.len) + ")";
    case Kind::kRemovexattr: return who + XattrCall(op, "removexattr", "lremovexattr") + ", " + Quote(op.str) + ")";
    case Kind::kReaddir: return who + "readdir(" + p + ")";
    case Kind::kClose: return who + "close(" + Fd(op.slot) + ")";
    case Kind::kRead: return who + "read(" + Fd(op.slot) + ", " + std::to_string(op.len) + ")";
    case Kind::kPread: return who + "pread(" + Fd(op.slot) + ", " + std::to_string(op.len) + ", " + std::to_string(op.off) + ")";
    case Kind::kWrite: return who + "write(" + Fd(op.slot) + ", " + Data(op) + ")";
    case Kind::kPwrite: return who + "pwrite(" + Fd(op.slot) + ", " + Data(op) + ", " + std::to_string(op.off) + ")";
    case Kind::kLseek:
      return who + "lseek(" + Fd(op.slot) + ", " + std::to_string(op.off) + ", " +
             (op.flags == SEEK_SET ? "SEEK_SET" : op.flags == SEEK_CUR ? "SEEK_CUR" : op.flags == SEEK_END ? "SEEK_END"
              : op.flags == SEEK_DATA ? "SEEK_DATA" : op.flags == SEEK_HOLE ? "SEEK_HOLE" : std::to_string(op.flags).c_str()) + ")";
    case Kind::kFtruncate: return who + "ftruncate(" + Fd(op.slot) + ", " + std::to_string(op.len) + ")";
    case Kind::kFallocate:
      return who + "fallocate(" + Fd(op.slot) + ", " +
             Flags(op.flags, {{FALLOC_FL_KEEP_SIZE, "KEEP_SIZE"}, {FALLOC_FL_PUNCH_HOLE, "PUNCH_HOLE"},
                              {FALLOC_FL_ZERO_RANGE, "ZERO_RANGE"}, {FALLOC_FL_COLLAPSE_RANGE, "COLLAPSE_RANGE"},
                              {FALLOC_FL_INSERT_RANGE, "INSERT_RANGE"}, {FALLOC_FL_UNSHARE_RANGE, "UNSHARE_RANGE"},
                              {FALLOC_FL_NO_HIDE_STALE, "NO_HIDE_STALE"}}, "0") +
             ", " + std::to_string(op.off) + ", " + std::to_string(op.len) + ")";
    case Kind::kCopyRange: {
      auto o = [](int64_t v) { return v < 0 ? std::string("NULL") : "&" + std::to_string(v); };
      return who + "copy_file_range(" + Fd(op.slot) + ", " + o(op.off) + ", " + Fd(op.slot2) + ", " + o(op.off2) + ", " +
             std::to_string(op.len) + ", 0)";
    }
    case Kind::kFsync: return who + "fsync(" + Fd(op.slot) + ")";
    case Kind::kFdatasync: return who + "fdatasync(" + Fd(op.slot) + ")";
    case Kind::kFstat: return who + "fstat(" + Fd(op.slot) + ")";
    case Kind::kFchmod: return who + "fchmod(" + Fd(op.slot) + ", " + Oct(op.mode) + ")";
    case Kind::kFchown: return who + "fchown(" + Fd(op.slot) + ", " + Id(op.uid) + ", " + Id(op.gid) + ")";
    case Kind::kFsetxattr:
      return who + "fsetxattr(" + Fd(op.slot) + ", " + Quote(op.str) + ", " + Data(op) + ", " + XattrFlags(op.flags) + ")";
    case Kind::kFgetxattr: return who + "fgetxattr(" + Fd(op.slot) + ", " + Quote(op.str) + ", bufsize " + std::to_string(op.len) + ")";
    case Kind::kFlistxattr: return who + "flistxattr(" + Fd(op.slot) + ", bufsize " + std::to_string(op.len) + ")";
    case Kind::kFremovexattr: return who + "fremovexattr(" + Fd(op.slot) + ", " + Quote(op.str) + ")";
    case Kind::kGetdents: return who + "getdents(" + Fd(op.slot) + ") from offset 0";
    case Kind::kReopenRead:
      return who + "open(\"/proc/self/fd/\"+" + Fd(op.slot) + ", O_RDONLY|O_NONBLOCK), pread(" + std::to_string(op.len) + ", " +
             std::to_string(op.off) + "), close";
    case Kind::kFreadlink: return who + "readlinkat(" + Fd(op.slot) + ", \"\", bufsize " + std::to_string(op.len) + ")";
    case Kind::kRemount: return "--- close all descriptors, unmount, fsck.pmemfs -n, mount ---";
    case Kind::kKill: return "--- SIGKILL the daemon, close all descriptors, fsck.pmemfs -n, mount ---";
    case Kind::kCheck: return "--- compare the trees ---";
    case Kind::kBallastWrite:
      return std::string("ballast: ") + (op.flags ? "fallocate(" : "pwrite(") + Quote(".ballast/" + op.str) + ", " +
             std::to_string(op.len) + " bytes at " + std::to_string(op.off) + ")";
    case Kind::kBallastPunch:
      return "ballast: punch(" + Quote(".ballast/" + op.str) + ", " + std::to_string(op.off) + ", " + std::to_string(op.len) + ")";
    case Kind::kBallastUnlink: return "ballast: unlink(" + Quote(".ballast/" + op.str) + ")";
    case Kind::kCount: break;
  }
  return "?";
}

std::string Describe(const Op& op, const Outcome& o) {
  std::string s;
  if (o.synthetic) return "(not run: slot not open in this worker) = -1 EBADF";
  if (o.ret == -1) return "= -1 " + ErrName(o.err);
  s = "= " + std::to_string(o.ret);
  switch (op.kind) {
    case Kind::kRead: case Kind::kPread: case Kind::kGetxattr: case Kind::kFgetxattr: case Kind::kReadlink:
    case Kind::kReopenRead: case Kind::kFreadlink: {
      size_t nz = 0;
      for (char c : o.data) nz += c != 0;
      s += " (" + std::to_string(o.data.size()) + " bytes, " + std::to_string(nz) + " non-zero";
      if (op.kind == Kind::kReadlink || op.kind == Kind::kFreadlink) s += ": " + Quote(o.data);
      s += ")";
      break;
    }
    case Kind::kReaddir: case Kind::kGetdents: case Kind::kListxattr: case Kind::kFlistxattr: {
      size_t n = 0;
      for (char c : o.data) n += c == '\n';
      s += " (" + std::to_string(n) + " names)";
      break;
    }
    default:
      break;
  }
  if (o.st.valid) {
    char buf[160];
    std::snprintf(buf, sizeof buf, " {mode %o nlink %llu uid %u gid %u size %lld}", o.st.mode,
                  static_cast<unsigned long long>(o.st.nlink), o.st.uid, o.st.gid, static_cast<long long>(o.st.size));
    s += buf;
  }
  return s;
}

// ---- wire format -----------------------------------------------------------------------------

namespace {

template <typename T>
void Put(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
void PutStr(std::string* out, const std::string& s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
template <typename T>
bool Get(const std::string& in, size_t* pos, T* v) {
  if (*pos + sizeof(T) > in.size()) return false;
  std::memcpy(v, in.data() + *pos, sizeof(T));
  *pos += sizeof(T);
  return true;
}
bool GetStr(const std::string& in, size_t* pos, std::string* s) {
  uint32_t n;
  if (!Get(in, pos, &n) || *pos + n > in.size()) return false;
  s->assign(in.data() + *pos, n);
  *pos += n;
  return true;
}

// The fixed-size part of an Op, copied as bytes (both ends are this binary).
struct OpFixed {
  Kind kind;
  int8_t worker;
  bool probe;
  int16_t slot, slot2;
  uint32_t mode, umask;
  int64_t flags, off, off2, len;
  uint32_t uid, gid;
  uint64_t seed;
  int64_t tsec[2], tnsec[2];
};

}  // namespace

void Serialize(const Op& op, std::string* out) {
  OpFixed f{op.kind, op.worker, op.probe, op.slot, op.slot2, op.mode, op.umask, op.flags, op.off, op.off2, op.len,
            op.uid, op.gid, op.seed, {op.tsec[0], op.tsec[1]}, {op.tnsec[0], op.tnsec[1]}};
  Put(out, f);
  PutStr(out, op.path);
  PutStr(out, op.path2);
  PutStr(out, op.str);
}

bool Deserialize(const std::string& in, size_t* pos, Op* op) {
  OpFixed f;
  if (!Get(in, pos, &f)) return false;
  op->kind = f.kind, op->worker = f.worker, op->probe = f.probe, op->slot = f.slot, op->slot2 = f.slot2;
  op->mode = f.mode, op->umask = f.umask, op->flags = f.flags, op->off = f.off, op->off2 = f.off2, op->len = f.len;
  op->uid = f.uid, op->gid = f.gid, op->seed = f.seed;
  for (int i = 0; i < 2; ++i) op->tsec[i] = f.tsec[i], op->tnsec[i] = f.tnsec[i];
  return GetStr(in, pos, &op->path) && GetStr(in, pos, &op->path2) && GetStr(in, pos, &op->str);
}

void Serialize(const Outcome& o, std::string* out) {
  Put(out, o.ret);
  Put(out, o.err);
  Put(out, o.st);
  Put(out, o.fd);
  Put(out, o.probe);
  Put(out, o.synthetic);
  PutStr(out, o.data);
}

bool Deserialize(const std::string& in, size_t* pos, Outcome* o) {
  return Get(in, pos, &o->ret) && Get(in, pos, &o->err) && Get(in, pos, &o->st) && Get(in, pos, &o->fd) &&
         Get(in, pos, &o->probe) && Get(in, pos, &o->synthetic) && GetStr(in, pos, &o->data);
}

}  // namespace pmemfs::difftest
