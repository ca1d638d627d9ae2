// SPDX-License-Identifier: BSD-3-Clause
#include "differential/exec.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace pmemfs::difftest {

StatInfo ToInfo(const struct stat& st) {
  StatInfo s;
  s.valid = true;
  s.mode = st.st_mode;
  s.uid = st.st_uid;
  s.gid = st.st_gid;
  s.nlink = st.st_nlink;
  s.rdev = st.st_rdev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.blocks = st.st_blocks;
  s.atime_s = st.st_atim.tv_sec, s.atime_ns = st.st_atim.tv_nsec;
  s.mtime_s = st.st_mtim.tv_sec, s.mtime_ns = st.st_mtim.tv_nsec;
  s.ctime_s = st.st_ctim.tv_sec, s.ctime_ns = st.st_ctim.tv_nsec;
  return s;
}

bool SyncStat(int dirfd, const std::string& path, int flags, StatInfo* out) {
  struct statx x;
  if (::statx(dirfd, path.c_str(), flags | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &x) != 0) return false;
  struct stat st {};
  st.st_mode = x.stx_mode;
  st.st_uid = x.stx_uid;
  st.st_gid = x.stx_gid;
  st.st_nlink = x.stx_nlink;
  st.st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
  st.st_ino = x.stx_ino;
  st.st_size = static_cast<off_t>(x.stx_size);
  st.st_blocks = static_cast<blkcnt_t>(x.stx_blocks);
  st.st_atim = timespec{x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
  st.st_mtim = timespec{x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
  st.st_ctim = timespec{x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
  *out = ToInfo(st);
  return true;
}

namespace {

std::string Parent(const std::string& rel) {
  std::string p = rel;
  while (!p.empty() && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}

// A sorted, newline-separated list: order is not part of the contract of readdir or listxattr.
std::string SortedList(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  std::string out;
  for (auto& s : v) out += s + "\n";
  return out;
}

// getdents64 from offset 0 on `fd`: "name type" lines (., .. included).
int ListDir(int fd, std::string* out) {
  if (::lseek(fd, 0, SEEK_SET) < 0) return -1;
  std::vector<std::string> names;
  alignas(8) char buf[32768];
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) return -1;
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + pos);
      names.push_back(std::string(d->d_name) + " " + std::to_string(d->d_type));
      pos += d->d_reclen;
    }
  }
  *out = SortedList(std::move(names));
  return static_cast<int>(std::count(out->begin(), out->end(), '\n'));
}

std::string NameList(const char* buf, ssize_t n) {
  std::vector<std::string> names;
  for (ssize_t pos = 0; pos < n;) {
    std::string name(buf + pos);
    pos += static_cast<ssize_t>(name.size()) + 1;
    names.push_back(name);
  }
  return SortedList(std::move(names));
}

struct ProbeState {
  struct stat target {}, parent {};
  bool has_target = false, has_parent = false;
};

ProbeState TakeProbe(const Op& op, Side& side, int fd) {
  ProbeState p;
  if (IsFdOp(op.kind)) {
    p.has_target = fd >= 0 && ::fstat(fd, &p.target) == 0;
    return p;
  }
  std::string path = op.path.empty() ? side.root : side.root + "/" + op.path;
  p.has_target = ::lstat(path.c_str(), &p.target) == 0;
  std::string parent = Parent(op.path);
  std::string ppath = parent.empty() ? side.root : side.root + "/" + parent;
  p.has_parent = ::lstat(ppath.c_str(), &p.parent) == 0;
  return p;
}

// tmpfs stamps most changes with the coarse clock: multigrain timestamps (Linux 6.13) give
// a fine-grained one only to an inode whose ctime was read since its last change, and a
// directory takes its times from the changed child's. So a change can leave a time exactly
// as it was, and on this tickless kernel even a wait of a tick does not prevent it (half of
// the unlinks after a 5 ms sleep left the directory's times alone). But a coarse stamp is
// never below the floor, the last fine-grained stamp handed out on the machine: changing a
// scratch file whose ctime was just read, twice within a tick, takes a fine-grained stamp
// and raises the floor to now, above every earlier stamp, so any change after it shows
// (0 unchanged of 10,000 unlinks and writes measured).
void BumpTimestampFloor(const std::string& path) {
  if (path.empty()) return;
  struct stat st;
  for (int i = 0; i < 2; ++i) {
    ::chmod(path.c_str(), 0600);
    ::stat(path.c_str(), &st);
    ::chmod(path.c_str(), 0644);
    ::stat(path.c_str(), &st);
  }
}

bool Differs(const timespec& a, const timespec& b) { return a.tv_sec != b.tv_sec || a.tv_nsec != b.tv_nsec; }

uint32_t ProbeBits(const ProbeState& before, const ProbeState& after) {
  uint32_t bits = 0;
  if (before.has_target) bits |= kTargetBefore;
  if (after.has_target) bits |= kTargetAfter;
  if (before.has_target && after.has_target) {
    if (before.target.st_ino == after.target.st_ino) {
      bits |= kTargetSameInode;
      if (Differs(before.target.st_mtim, after.target.st_mtim)) bits |= kTargetMtime;
      if (Differs(before.target.st_ctim, after.target.st_ctim)) bits |= kTargetCtime;
      if (before.target.st_size != after.target.st_size) bits |= kTargetSize;
    }
  }
  if (before.has_parent && after.has_parent && before.parent.st_ino == after.parent.st_ino) {
    if (Differs(before.parent.st_mtim, after.parent.st_mtim)) bits |= kParentMtime;
    if (Differs(before.parent.st_ctim, after.parent.st_ctim)) bits |= kParentCtime;
  }
  return bits;
}

// tmpfs has no FALLOC_FL_ZERO_RANGE (ext4, XFS and pmemfs do). The reference gives the
// semantics ext4 documents: the range reads as zeros, its blocks are allocated, and without
// KEEP_SIZE the size grows to cover it: punch the range, then allocate it.
int EmulateZeroRange(int fd, const Op& op) {
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op.off, op.len) != 0) return -1;
  return ::fallocate(fd, static_cast<int>(op.flags & FALLOC_FL_KEEP_SIZE), op.off, op.len);
}

void Run(const Op& op, Side& side, int fd, Outcome* o) {
  const std::string path = op.path.empty() ? side.root : side.root + "/" + op.path;
  const std::string path2 = op.path2.empty() ? side.root : side.root + "/" + op.path2;
  const char* p = path.c_str();
  const bool nofollow = op.flags & AT_SYMLINK_NOFOLLOW;
  struct stat st {};
  int64_t r = -1;
  std::string buf;
  auto timesp = [&](timespec* ts) -> const timespec* {
    if (op.tnsec[0] == kNullTimes) return nullptr;
    for (int i = 0; i < 2; ++i) ts[i] = timespec{op.tsec[i], op.tnsec[i]};
    return ts;
  };
  timespec ts[2];
  switch (op.kind) {
    case Kind::kOpen: {
      auto old = side.fds.find(op.slot);
      if (old != side.fds.end()) ::close(old->second), side.fds.erase(old);
      int f = ::open(p, static_cast<int>(op.flags) | O_NONBLOCK | O_CLOEXEC, op.mode);
      if (f >= 0) {
        side.fds[op.slot] = f;
        o->fd = f;
        r = 0;
        if (::fstat(f, &st) == 0) o->st = ToInfo(st);  // what was opened (or created) is compared too
      }
      break;
    }
    case Kind::kStat: r = ::stat(p, &st); break;
    case Kind::kLstat: r = ::lstat(p, &st); break;
    case Kind::kAccess: r = ::faccessat(AT_FDCWD, p, static_cast<int>(op.mode), static_cast<int>(op.flags)); break;
    case Kind::kTruncate: r = ::truncate(p, op.len); break;
    case Kind::kChmod: r = ::chmod(p, op.mode); break;
    case Kind::kChown: r = ::fchownat(AT_FDCWD, p, op.uid, op.gid, nofollow ? AT_SYMLINK_NOFOLLOW : 0); break;
    case Kind::kUtimens: r = ::utimensat(AT_FDCWD, p, timesp(ts), nofollow ? AT_SYMLINK_NOFOLLOW : 0); break;
    case Kind::kMkdir: r = ::mkdir(p, op.mode); break;
    case Kind::kRmdir: r = ::rmdir(p); break;
    case Kind::kUnlink: r = ::unlink(p); break;
    case Kind::kMknod:
      r = ::mknod(p, op.mode, makedev(static_cast<unsigned>(op.len >> 32), static_cast<unsigned>(op.len & 0xffffffff)));
      break;
    case Kind::kSymlink: r = ::symlink(op.str.c_str(), p); break;
    case Kind::kReadlink:
      buf.resize(static_cast<size_t>(op.len));
      r = ::readlink(p, buf.data(), buf.size());
      if (r >= 0) o->data = buf.substr(0, static_cast<size_t>(r));
      break;
    case Kind::kLink: r = ::linkat(AT_FDCWD, p, AT_FDCWD, path2.c_str(), static_cast<int>(op.flags & AT_SYMLINK_FOLLOW)); break;
    case Kind::kRename:
      r = ::syscall(SYS_renameat2, AT_FDCWD, p, AT_FDCWD, path2.c_str(), static_cast<unsigned>(op.flags));
      break;
    case Kind::kSetxattr: case Kind::kFsetxattr: {
      std::string v = Fill(op.seed, static_cast<size_t>(op.len));
      int fl = static_cast<int>(op.flags & (XATTR_CREATE | XATTR_REPLACE));
      if (op.kind == Kind::kFsetxattr) r = ::fsetxattr(fd, op.str.c_str(), v.data(), v.size(), fl);
      else if (nofollow) r = ::lsetxattr(p, op.str.c_str(), v.data(), v.size(), fl);
      else r = ::setxattr(p, op.str.c_str(), v.data(), v.size(), fl);
      break;
    }
    case Kind::kGetxattr: case Kind::kFgetxattr:
      buf.resize(static_cast<size_t>(op.len));
      if (op.kind == Kind::kFgetxattr) r = ::fgetxattr(fd, op.str.c_str(), buf.data(), buf.size());
      else if (nofollow) r = ::lgetxattr(p, op.str.c_str(), buf.data(), buf.size());
      else r = ::getxattr(p, op.str.c_str(), buf.data(), buf.size());
      if (r >= 0 && op.len > 0) o->data = buf.substr(0, static_cast<size_t>(r));
      break;
    case Kind::kListxattr: case Kind::kFlistxattr:
      buf.resize(static_cast<size_t>(op.len));
      if (op.kind == Kind::kFlistxattr) r = ::flistxattr(fd, buf.data(), buf.size());
      else if (nofollow) r = ::llistxattr(p, buf.data(), buf.size());
      else r = ::listxattr(p, buf.data(), buf.size());
      if (r >= 0 && op.len > 0) o->data = NameList(buf.data(), r);
      break;
    case Kind::kRemovexattr: case Kind::kFremovexattr:
      if (op.kind == Kind::kFremovexattr) r = ::fremovexattr(fd, op.str.c_str());
      else if (nofollow) r = ::lremovexattr(p, op.str.c_str());
      else r = ::removexattr(p, op.str.c_str());
      break;
    case Kind::kReaddir: {
      int d = ::open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (d >= 0) {
        r = ListDir(d, &o->data);
        if (r < 0) {
          int e = errno;
          ::close(d);
          errno = e;
        } else {
          ::close(d);
        }
      }
      break;
    }
    case Kind::kClose:
      r = ::close(fd);
      side.fds.erase(op.slot);
      break;
    case Kind::kRead: case Kind::kPread:
      buf.resize(static_cast<size_t>(op.len));
      r = op.kind == Kind::kRead ? ::read(fd, buf.data(), buf.size()) : ::pread(fd, buf.data(), buf.size(), op.off);
      if (r >= 0) o->data = buf.substr(0, static_cast<size_t>(r));
      break;
    case Kind::kWrite: case Kind::kPwrite: {
      std::string v = Fill(op.seed, static_cast<size_t>(op.len));
      r = op.kind == Kind::kWrite ? ::write(fd, v.data(), v.size()) : ::pwrite(fd, v.data(), v.size(), op.off);
      break;
    }
    case Kind::kLseek:
      if (op.flags == SEEK_DATA || op.flags == SEEK_HOLE) {
        // The answer is compared, but the position is restored: the two filesystems may
        // legitimately report holes differently (see harness.cc), and later reads must not
        // diverge because of it.
        off_t at = ::lseek(fd, 0, SEEK_CUR);
        r = ::lseek(fd, op.off, static_cast<int>(op.flags));
        int e = errno;
        if (at >= 0) ::lseek(fd, at, SEEK_SET);
        errno = e;
      } else {
        r = ::lseek(fd, op.off, static_cast<int>(op.flags));
      }
      break;
    case Kind::kFtruncate: r = ::ftruncate(fd, op.len); break;
    case Kind::kFallocate:
      r = ::fallocate(fd, static_cast<int>(op.flags), op.off, op.len);
      if (r != 0 && errno == EOPNOTSUPP && side.reference && side.emulate_zero_range && (op.flags & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE)
        r = EmulateZeroRange(fd, op);
      break;
    case Kind::kCopyRange: {
      auto out = side.fds.find(op.slot2);
      if (out == side.fds.end()) {
        errno = EBADF;
        break;
      }
      loff_t in_off = op.off, out_off = op.off2;
      r = ::copy_file_range(fd, op.off < 0 ? nullptr : &in_off, out->second, op.off2 < 0 ? nullptr : &out_off,
                            static_cast<size_t>(op.len), 0);
      break;
    }
    case Kind::kFsync: r = ::fsync(fd); break;
    case Kind::kFdatasync: r = ::fdatasync(fd); break;
    case Kind::kFstat: r = ::fstat(fd, &st); break;
    case Kind::kFchmod: r = ::fchmod(fd, op.mode); break;
    case Kind::kFchown: r = ::fchown(fd, op.uid, op.gid); break;
    case Kind::kFutimens: r = ::futimens(fd, timesp(ts)); break;
    case Kind::kGetdents: r = ListDir(fd, &o->data); break;
    case Kind::kReopenRead: {
      // O_NONBLOCK: a FIFO opens at once (and answers ESPIPE to pread on both sides).
      const std::string self = "/proc/self/fd/" + std::to_string(fd);
      int rfd = ::open(self.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (rfd >= 0) {
        buf.resize(static_cast<size_t>(op.len));
        r = ::pread(rfd, buf.data(), buf.size(), op.off);
        int e = errno;
        ::close(rfd);
        errno = e;
        if (r >= 0) o->data = buf.substr(0, static_cast<size_t>(r));
      }
      break;
    }
    case Kind::kFreadlink:
      buf.resize(static_cast<size_t>(op.len));
      r = ::readlinkat(fd, "", buf.data(), buf.size());
      if (r >= 0) o->data = buf.substr(0, static_cast<size_t>(r));
      break;
    default:
      errno = EINVAL;
      break;
  }
  o->ret = r < 0 ? -1 : r;
  o->err = r < 0 ? errno : 0;
  if (r >= 0 && (op.kind == Kind::kStat || op.kind == Kind::kLstat || op.kind == Kind::kFstat)) o->st = ToInfo(st);
}

}  // namespace

Outcome Execute(const Op& op, Side& side) {
  Outcome o;
  int fd = -1;
  if (IsFdOp(op.kind)) {
    auto it = side.fds.find(op.slot);
    if (it == side.fds.end()) {
      // A replayed subset may use a slot whose open was dropped: both sides answer the same.
      o.ret = -1, o.err = EBADF, o.synthetic = true;
      return o;
    }
    fd = it->second;
  }
  ::umask(op.umask);
  ProbeState before;
  if (op.probe) {
    before = TakeProbe(op, side, fd);
    if (side.reference) BumpTimestampFloor(side.clock_file);
  }
  errno = 0;
  Run(op, side, fd, &o);
  if (op.probe) {
    int e = errno;
    auto it = side.fds.find(op.slot);
    int after_fd = IsFdOp(op.kind) && it != side.fds.end() ? it->second : -1;
    o.probe = ProbeBits(before, TakeProbe(op, side, after_fd));
    errno = e;
  }
  return o;
}

}  // namespace pmemfs::difftest
