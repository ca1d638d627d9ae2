// SPDX-License-Identifier: BSD-3-Clause
// FUSE low-level callbacks. Each is noexcept, replies exactly once, takes its FileSystem from
// fuse_req_userdata, and turns a Result into a reply. Errors are logged here, once, where
// they become a reply: unexpected ones (corruption, I/O, read-only) at error level.
#define FUSE_USE_VERSION 312
#include "fs/fuse_ops.h"

#include <fuse_lowlevel.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <csignal>
#include <cstring>

#include "common/lease_protocol.h"
#include "fs/credentials.h"
#include "pmem/fault.h"

namespace pmemfs::fs {
namespace {

constexpr double kTimeout = 1.0;  // every change passes through this daemon's kernel mount

// Error lines a caller can provoke in a loop are bounded: at most kBurst per kWindow, then
// one line saying how many were suppressed.
class LogLimiter {
 public:
  // True when a line may be logged now; `suppressed` receives the count dropped since the
  // last line that was.
  bool Allow(uint64_t* suppressed) {
    std::lock_guard lk(mu_);
    auto now = std::chrono::steady_clock::now();
    if (now - window_start_ > kWindow) {
      window_start_ = now;
      used_ = 0;
    }
    if (used_ >= kBurst) {
      ++dropped_;
      return false;
    }
    ++used_;
    *suppressed = std::exchange(dropped_, 0);
    return true;
  }

 private:
  static constexpr int kBurst = 20;
  static constexpr std::chrono::seconds kWindow{10};
  std::mutex mu_;
  std::chrono::steady_clock::time_point window_start_{};  // GUARDED_BY(mu_)
  int used_ = 0;                                          // GUARDED_BY(mu_)
  uint64_t dropped_ = 0;                                  // GUARDED_BY(mu_)
};

// The session's state, reached through fuse_req_userdata (no globals).
struct Session {
  FileSystem* fs;
  bool no_opendir = false;  // the kernel takes ENOSYS from opendir as "no opendir needed"
  std::atomic<uint64_t> init_unique{0};  // the kernel's INIT request, while it is in flight
  LogLimiter error_log;
  std::atomic<uint64_t> faults_seen{0};  // region faults (pmem/fault.h) already acted on
  // Open handles per inode that use the kernel page cache (every open of a file without
  // immutable extents): a flagged file's lease reply says when some are still open
  // (PMEMFS_LEASE_CACHED_OPENS), since bytes copied in userspace would bypass that cache.
  std::mutex opens_mu;
  std::unordered_map<uint64_t, uint32_t> cached_opens;  // GUARDED_BY(opens_mu)
};

// Region faults (SIGBUS on the mapping, survived by pmem/fault.h): the first one stops the
// filesystem (read-only, the reason logged once). Called around every request.
void CheckRegionFaults(Session& s) {
  uint64_t n = pmem::fault::Count();
  if (n != 0 && s.faults_seen.exchange(n) != n)
    s.fs->Stop("region fault at " + pmem::fault::Describe() + "; requests that touch it answer EIO");
}

Session& Sess(fuse_req_t req) { return *static_cast<Session*>(fuse_req_userdata(req)); }
FileSystem& Fs(fuse_req_t req) { return *Sess(req).fs; }

Ctx MakeCtx(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Ctx{c->uid, c->gid, static_cast<uint32_t>(c->pid), ProcessHasCapability, ProcessInGroup};
}

bool Expected(int code) {
  switch (code) {
    case ENOENT: case EEXIST: case ENOTEMPTY: case ENOTDIR: case EISDIR: case ENODATA: case ERANGE:
    case EPERM: case EINVAL: case ENAMETOOLONG: case ENOSPC: case EXDEV: case EOPNOTSUPP: case ENXIO:
    case EFBIG: case EBUSY: case E2BIG: case EMLINK: case EACCES: case ENOTTY:
    case EROFS:  // a read-only mount, or a stopped filesystem whose reason was logged once
      return true;
    default:
      return false;
  }
}

void ReplyErr(fuse_req_t req, const Error& e, const char* op, uint64_t ino) {
  uint64_t suppressed = 0;
  if (Expected(e.code)) {
    spdlog::debug("{} inode {}: {}", op, ino, e.Message());
  } else if (Sess(req).error_log.Allow(&suppressed)) {
    if (suppressed) spdlog::error("({} similar error lines suppressed)", suppressed);
    spdlog::error("{} inode {}: {}", op, ino, e.Message());
  }
  fuse_reply_err(req, e.code);
}

// Runs `body`; an exception (allocation failure) becomes an error reply, never a crash.
template <typename F>
void Guard(fuse_req_t req, const char* op, F&& body) noexcept {
  try {
    body();
  } catch (const std::bad_alloc&) {
    spdlog::error("{}: out of memory", op);
    fuse_reply_err(req, ENOMEM);
  } catch (...) {
    spdlog::error("{}: internal error", op);
    fuse_reply_err(req, EIO);
  }
}

void ReplyEntry(fuse_req_t req, const Result<Entry>& r, const char* op, uint64_t ino) {
  if (!r.ok()) return ReplyErr(req, r.error(), op, ino);
  fuse_entry_param e{};
  e.ino = r->ino;
  e.generation = r->generation;
  e.attr = r->attr;
  e.attr_timeout = kTimeout;
  e.entry_timeout = kTimeout;
  if (fuse_reply_entry(req, &e) != 0) Fs(req).Forget(r->ino, 1);  // the kernel never got it
}

void ReplyStatus(fuse_req_t req, const Status& s, const char* op, uint64_t ino) {
  if (!s.ok()) return ReplyErr(req, s.error(), op, ino);
  fuse_reply_err(req, 0);
}

// ---- callbacks ----------------------------------------------------------------------------

void Init(void* userdata, fuse_conn_info* conn) {
  auto* session = static_cast<Session*>(userdata);
  FileSystem* fs = session->fs;
  // Durability on write(): no write-back cache, every write reaches the daemon before it returns.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // Directory handles carry no state: let the kernel skip OPENDIR/RELEASEDIR round trips.
  if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
    conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
    session->no_opendir = true;
  }
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->time_gran = 1;
  spdlog::info("pmemfs mounted: {} ({})", fs->region().Describe(), fs->read_only() ? "read-only" : "read-write");
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Guard(req, "lookup", [&] { ReplyEntry(req, Fs(req).Lookup(parent, name), "lookup", parent); });
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept {
  try {
    Fs(req).Forget(ino, nlookup);
  } catch (...) {
    spdlog::error("forget inode {}: internal error", ino);
  }
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept {
  try {
    for (size_t i = 0; i < count; ++i) Fs(req).Forget(forgets[i].ino, forgets[i].nlookup);
  } catch (...) {
    spdlog::error("forget_multi: internal error");
  }
  fuse_reply_none(req);
}

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) noexcept {
  Guard(req, "getattr", [&] {
    auto r = Fs(req).GetAttr(ino);
    if (!r.ok()) return ReplyErr(req, r.error(), "getattr", ino);
    fuse_reply_attr(req, &*r, kTimeout);
  });
}

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) noexcept {
  Guard(req, "setattr", [&] {
    SetAttrIn in;
    if (to_set & FUSE_SET_ATTR_MODE) in.mask |= kSetMode, in.mode = attr->st_mode;
    if (to_set & FUSE_SET_ATTR_UID) in.mask |= kSetUid, in.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) in.mask |= kSetGid, in.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) in.mask |= kSetSize, in.size = static_cast<uint64_t>(attr->st_size);
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) in.mask |= kSetAtimeNow;
    else if (to_set & FUSE_SET_ATTR_ATIME) in.mask |= kSetAtime, in.atime = attr->st_atim;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) in.mask |= kSetMtimeNow;
    else if (to_set & FUSE_SET_ATTR_MTIME) in.mask |= kSetMtime, in.mtime = attr->st_mtim;
    if (to_set & FUSE_SET_ATTR_CTIME) in.mask |= kSetCtime, in.ctime = attr->st_ctim;
    if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size < 0) return (void)fuse_reply_err(req, EINVAL);
    auto r = Fs(req).SetAttr(MakeCtx(req), ino, in);
    if (!r.ok()) return ReplyErr(req, r.error(), "setattr", ino);
    fuse_reply_attr(req, &*r, kTimeout);
  });
}

void Readlink(fuse_req_t req, fuse_ino_t ino) noexcept {
  Guard(req, "readlink", [&] {
    auto r = Fs(req).Readlink(ino);
    if (!r.ok()) return ReplyErr(req, r.error(), "readlink", ino);
    fuse_reply_readlink(req, r->c_str());
  });
}

void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) noexcept {
  Guard(req, "mknod", [&] { ReplyEntry(req, Fs(req).Mknod(MakeCtx(req), parent, name, mode, rdev), "mknod", parent); });
}

void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) noexcept {
  Guard(req, "mkdir", [&] { ReplyEntry(req, Fs(req).Mkdir(MakeCtx(req), parent, name, mode), "mkdir", parent); });
}

void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) noexcept {
  Guard(req, "symlink", [&] { ReplyEntry(req, Fs(req).Symlink(MakeCtx(req), parent, name, link), "symlink", parent); });
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) noexcept {
  Guard(req, "link", [&] { ReplyEntry(req, Fs(req).Link(ino, newparent, newname), "link", ino); });
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Guard(req, "unlink", [&] { ReplyStatus(req, Fs(req).Unlink(parent, name), "unlink", parent); });
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Guard(req, "rmdir", [&] { ReplyStatus(req, Fs(req).Rmdir(parent, name), "rmdir", parent); });
}

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
            unsigned int flags) noexcept {
  Guard(req, "rename", [&] {
    ReplyStatus(req, Fs(req).Rename(parent, name, newparent, newname, flags, MakeCtx(req)), "rename", parent);
  });
}

// Per open file handle (fi->fh).
struct Handle {
  bool lease = false;  // this handle holds a direct-mapping lease
  int accmode = O_RDONLY;  // the open mode (O_RDONLY, O_WRONLY, O_RDWR): what a lease may allow
  bool direct_io = false;  // opened while flagged: the kernel bypasses its page cache
};

Handle* HandleOf(fuse_file_info* fi) { return reinterpret_cast<Handle*>(fi->fh); }

void UncountCachedOpen(Session& se, fuse_ino_t ino) {
  std::lock_guard lk(se.opens_mu);
  auto it = se.cached_opens.find(ino);
  if (it != se.cached_opens.end() && --it->second == 0) se.cached_opens.erase(it);
}

void SetOpenFlags(Session& se, fuse_ino_t ino, fuse_file_info* fi) {
  FileSystem& fs = *se.fs;
  // Files with immutable extents bypass the page cache: the direct mapping and read()/write()
  // through the mount then see the same bytes at once. A plain shared mmap of such a file
  // without libpmemfs fails with ENODEV (the kernel refuses it on direct-I/O files) rather
  // than serving stale pages.
  //
  // The open is counted as a page-cache one before the flag is looked at, and uncounted if
  // the file turns out flagged: an open that saw no flag was then counted before the flag
  // was set, so any lease taken after the flag (PMEMFS_LEASE_CACHED_OPENS) sees it.
  {
    std::lock_guard lk(se.opens_mu);
    se.cached_opens[ino]++;
  }
  if (fs.HasImmutableExtents(ino)) fi->direct_io = 1;
  else fi->keep_cache = 1;
  auto* h = new Handle();
  h->accmode = fi->flags & O_ACCMODE;
  h->direct_io = fi->direct_io;
  fi->fh = reinterpret_cast<uint64_t>(h);
  if (h->direct_io) UncountCachedOpen(se, ino);
}

void ReleaseHandle(Session& se, fuse_ino_t ino, fuse_file_info* fi) {
  FileSystem& fs = *se.fs;
  Handle* h = HandleOf(fi);
  if (h && h->lease) fs.DropLease(ino);
  if (h && !h->direct_io) UncountCachedOpen(se, ino);
  delete h;
  fi->fh = 0;
  fs.Release(ino);
}

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Guard(req, "open", [&] {
    FileSystem& fs = Fs(req);
    Status s = fs.Open(ino, fi->flags);
    if (!s.ok()) return ReplyErr(req, s.error(), "open", ino);
    SetOpenFlags(Sess(req), ino, fi);
    if (fuse_reply_open(req, fi) != 0) ReleaseHandle(Sess(req), ino, fi);
  });
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) noexcept {
  Guard(req, "create", [&] {
    FileSystem& fs = Fs(req);
    auto r = fs.Mknod(MakeCtx(req), parent, name, S_IFREG | (mode & 07777), 0);
    if (!r.ok()) return ReplyErr(req, r.error(), "create", parent);
    Status s = fs.Open(r->ino, fi->flags);
    if (!s.ok()) {
      fs.Forget(r->ino, 1);
      return ReplyErr(req, s.error(), "create", r->ino);
    }
    SetOpenFlags(Sess(req), r->ino, fi);
    fuse_entry_param e{};
    e.ino = r->ino;
    e.generation = r->generation;
    e.attr = r->attr;
    e.attr_timeout = kTimeout;
    e.entry_timeout = kTimeout;
    if (fuse_reply_create(req, &e, fi) != 0) {
      ReleaseHandle(Sess(req), r->ino, fi);
      fs.Forget(r->ino, 1);
    }
  });
}

// Zeros for holes, shared by every read reply.
alignas(4096) const uint8_t kZeros[256 << 10] = {};

void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  Guard(req, "read", [&] {
    if (off < 0) return (void)fuse_reply_err(req, EINVAL);
    Status s = Fs(req).Read(ino, static_cast<uint64_t>(off), size, [&](const std::vector<FileSystem::Piece>& pieces) {
      std::vector<iovec> iov;
      iov.reserve(pieces.size() + 4);
      for (const auto& p : pieces) {
        if (p.data && pmem::fault::Replaced(p.data, p.len)) {
          spdlog::debug("read inode {}: the bytes are in a faulted part of the region", ino);
          return (void)fuse_reply_err(req, EIO);  // never zeros for lost bytes
        }
        if (p.data) {
          iov.push_back(iovec{const_cast<void*>(p.data), p.len});
          continue;
        }
        for (size_t left = p.len; left > 0;) {
          size_t n = std::min(left, sizeof(kZeros));
          iov.push_back(iovec{const_cast<uint8_t*>(kZeros), n});
          left -= n;
        }
      }
      fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
    });
    if (!s.ok()) ReplyErr(req, s.error(), "read", ino);
  });
}

void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info*) noexcept {
  Guard(req, "write", [&] {
    if (off < 0) return (void)fuse_reply_err(req, EINVAL);
    auto r = Fs(req).Write(ino, static_cast<uint64_t>(off), buf, size, MakeCtx(req));
    if (!r.ok()) return ReplyErr(req, r.error(), "write", ino);
    fuse_reply_write(req, *r);
  });
}

void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Guard(req, "release", [&] {
    ReleaseHandle(Sess(req), ino, fi);
    fuse_reply_err(req, 0);
  });
}


void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  if (Sess(req).no_opendir) return (void)fuse_reply_err(req, ENOSYS);
  Guard(req, "opendir", [&] {
    auto r = Fs(req).GetAttr(ino);
    if (!r.ok()) return ReplyErr(req, r.error(), "opendir", ino);
    if (!S_ISDIR(r->st_mode)) return (void)fuse_reply_err(req, ENOTDIR);
    fuse_reply_open(req, fi);
  });
}

void DoReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  std::vector<char> buf(size);
  size_t used = 0;
  FileSystem& fs = Fs(req);
  Status s = fs.ReadDir(ino, static_cast<uint64_t>(off), plus,
                        [&](std::string_view name, const Entry& entry, uint64_t next) {
                          std::string n(name);
                          size_t len;
                          if (plus) {
                            fuse_entry_param e{};
                            e.attr = entry.attr;
                            if (n != "." && n != "..") {
                              // The same ino and generation as LOOKUP gives: the kernel takes
                              // any other generation for a new inode behind a reused number.
                              e.ino = entry.ino;
                              e.generation = entry.generation;
                              e.attr_timeout = e.entry_timeout = kTimeout;
                            }
                            len = fuse_add_direntry_plus(req, buf.data() + used, size - used, n.c_str(), &e,
                                                         static_cast<off_t>(next));
                          } else {
                            len = fuse_add_direntry(req, buf.data() + used, size - used, n.c_str(), &entry.attr,
                                                    static_cast<off_t>(next));
                          }
                          if (len > size - used) return false;
                          used += len;
                          return true;
                        });
  if (!s.ok()) return ReplyErr(req, s.error(), "readdir", ino);
  fuse_reply_buf(req, buf.data(), used);
}

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  Guard(req, "readdir", [&] { DoReadDir(req, ino, size, off, false); });
}

void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  Guard(req, "readdirplus", [&] { DoReadDir(req, ino, size, off, true); });
}

void ReleaseDir(fuse_req_t req, fuse_ino_t, fuse_file_info*) noexcept { fuse_reply_err(req, 0); }

void Statfs(fuse_req_t req, fuse_ino_t) noexcept {
  Guard(req, "statfs", [&] {
    StatFs s = Fs(req).Statfs();
    struct statvfs v {};
    v.f_bsize = v.f_frsize = s.block_size;
    v.f_blocks = s.blocks;
    v.f_bfree = v.f_bavail = s.bfree;
    v.f_files = s.files;
    v.f_ffree = v.f_favail = s.ffree;
    v.f_namemax = s.namelen;
    fuse_reply_statfs(req, &v);
  });
}

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) noexcept {
  Guard(req, "setxattr", [&] {
    ReplyStatus(req, Fs(req).SetXattr(MakeCtx(req), ino, name, std::string_view(value, size), flags),
                "setxattr", ino);
  });
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  Guard(req, "getxattr", [&] {
    auto r = Fs(req).GetXattr(ino, name);
    if (!r.ok()) return ReplyErr(req, r.error(), "getxattr", ino);
    if (size == 0) return (void)fuse_reply_xattr(req, r->size());
    if (r->size() > size) return (void)fuse_reply_err(req, ERANGE);
    fuse_reply_buf(req, r->data(), r->size());
  });
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
  Guard(req, "listxattr", [&] {
    auto r = Fs(req).ListXattr(ino, MakeCtx(req));
    if (!r.ok()) return ReplyErr(req, r.error(), "listxattr", ino);
    std::string out;
    for (const auto& n : *r) out.append(n).push_back('\0');
    if (size == 0) return (void)fuse_reply_xattr(req, out.size());
    if (out.size() > size) return (void)fuse_reply_err(req, ERANGE);
    fuse_reply_buf(req, out.data(), out.size());
  });
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) noexcept {
  Guard(req, "removexattr", [&] {
    ReplyStatus(req, Fs(req).RemoveXattr(MakeCtx(req), ino, name), "removexattr", ino);
  });
}

void Access(fuse_req_t req, fuse_ino_t ino, int) noexcept {
  // default_permissions: the kernel checks modes; only existence is ours to answer.
  Guard(req, "access", [&] {
    auto r = Fs(req).GetAttr(ino);
    ReplyStatus(req, r.ok() ? Status() : Status(r.error()), "access", ino);
  });
}

void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) noexcept {
  Guard(req, "fallocate", [&] {
    if (off < 0 || len <= 0) return (void)fuse_reply_err(req, EINVAL);
    ReplyStatus(req, Fs(req).Fallocate(ino, mode, static_cast<uint64_t>(off), static_cast<uint64_t>(len), MakeCtx(req)),
                "fallocate", ino);
  });
}

void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) noexcept {
  Guard(req, "lseek", [&] {
    if (off < 0) return (void)fuse_reply_err(req, ENXIO);
    auto r = Fs(req).Lseek(ino, static_cast<uint64_t>(off), whence);
    if (!r.ok()) return ReplyErr(req, r.error(), "lseek", ino);
    fuse_reply_lseek(req, static_cast<off_t>(*r));
  });
}

void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*, fuse_ino_t ino_out,
                   off_t off_out, fuse_file_info*, size_t len, int flags) noexcept {
  Guard(req, "copy_file_range", [&] {
    if (flags != 0 || off_in < 0 || off_out < 0) return (void)fuse_reply_err(req, EINVAL);
    auto r = Fs(req).CopyFileRange(ino_in, static_cast<uint64_t>(off_in), ino_out, static_cast<uint64_t>(off_out), len,
                                   MakeCtx(req));
    if (!r.ok()) return ReplyErr(req, r.error(), "copy_file_range", ino_out);
    fuse_reply_write(req, *r);
  });
}

static_assert(PMEMFS_SB_UUID_OFFSET == offsetof(format::Superblock, uuid), "clients read the uuid there");

// PMEMFS_IOC_TOUCH: the timestamps (and set-id bits) of bytes a client wrote in userspace.
void Touch(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, const void* in_buf, size_t in_bufsz) {
  if (in_bufsz < sizeof(pmemfs_touch_req)) return (void)fuse_reply_err(req, EINVAL);
  pmemfs_touch_req q;
  std::memcpy(&q, in_buf, sizeof(q));
  if (q.version < 3 || q.version > PMEMFS_LEASE_VERSION || q.reserved != 0) return (void)fuse_reply_err(req, EINVAL);
  Handle* h = HandleOf(fi);
  if (!h || h->accmode == O_RDONLY) return (void)fuse_reply_err(req, EBADF);  // as write(2)
  Status s = Fs(req).Touch(MakeCtx(req), ino);
  if (!s.ok()) return ReplyErr(req, s.error(), "touch", ino);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void Ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info* fi, unsigned flags,
           const void* in_buf, size_t in_bufsz, size_t out_bufsz) noexcept {
  Guard(req, "ioctl", [&] {
    if (flags & FUSE_IOCTL_COMPAT) return (void)fuse_reply_err(req, ENOTTY);
    if (cmd == PMEMFS_IOC_TOUCH) return Touch(req, ino, fi, in_buf, in_bufsz);
    if (cmd != PMEMFS_IOC_LEASE) return (void)fuse_reply_err(req, ENOTTY);
    if (in_bufsz < sizeof(pmemfs_lease_req) || out_bufsz < sizeof(pmemfs_lease_reply))
      return (void)fuse_reply_err(req, EINVAL);
    pmemfs_lease_req q;
    std::memcpy(&q, in_buf, sizeof(q));
    if (q.version < PMEMFS_LEASE_MIN_VERSION || q.version > PMEMFS_LEASE_VERSION)
      return (void)fuse_reply_err(req, EINVAL);
    const uint32_t qflags = q.version >= 3 ? q.flags : 0;
    if (qflags & ~PMEMFS_LEASE_DIRECT_ONLY) return (void)fuse_reply_err(req, EINVAL);
    FileSystem& fs = Fs(req);
    Handle* h = HandleOf(fi);
    // A mapping needs a descriptor open for reading, as mmap(2) does; writing needs O_RDWR.
    if (!h || h->accmode == O_WRONLY) return (void)fuse_reply_err(req, EACCES);
    // Userspace reads and writes must not bypass a page cache that this open file uses.
    if ((qflags & PMEMFS_LEASE_DIRECT_ONLY) && !h->direct_io) return (void)fuse_reply_err(req, EBADFD);
    bool take = !h->lease;
    auto info = fs.Lease(MakeCtx(req), ino, take, h->accmode == O_RDWR);
    if (!info.ok()) return ReplyErr(req, info.error(), "lease", ino);
    if (take) h->lease = true;
    if (q.first_extent > info->extents.size()) return (void)fuse_reply_err(req, ERANGE);
    auto r = std::make_unique<pmemfs_lease_reply>();
    std::memset(r.get(), 0, sizeof(*r));
    r->version = PMEMFS_LEASE_VERSION;
    r->granularity = static_cast<uint32_t>(fs.region().granularity());
    std::memcpy(r->uuid, fs.superblock().uuid, sizeof(r->uuid));
    std::snprintf(r->region_path, sizeof(r->region_path), "%s", fs.region().path().c_str());
    r->region_size = fs.region().size();
    r->file_size = info->file_size;
    r->align = info->align;
    r->access = PMEMFS_LEASE_READ | (info->writable ? PMEMFS_LEASE_WRITE : 0);
    {
      std::lock_guard lk(Sess(req).opens_mu);
      if (Sess(req).cached_opens.count(ino)) r->access |= PMEMFS_LEASE_CACHED_OPENS;
    }
    r->total_extents = info->extents.size();
    r->first_extent = q.first_extent;
    for (size_t i = q.first_extent; i < info->extents.size() && r->count < PMEMFS_LEASE_EXTENTS; ++i) {
      const auto& e = info->extents[i];
      r->extents[r->count++] = pmemfs_lease_extent{e.file_off, e.region_off, e.len};
    }
    spdlog::debug("lease inode {}: {} extents from {}", ino, r->count, q.first_extent);
    fuse_reply_ioctl(req, 0, r.get(), sizeof(*r));
  });
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = Init;
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
  ops.getattr = GetAttr;
  ops.setattr = SetAttr;
  ops.readlink = Readlink;
  ops.mknod = Mknod;
  ops.mkdir = Mkdir;
  ops.unlink = Unlink;
  ops.rmdir = Rmdir;
  ops.symlink = Symlink;
  ops.rename = Rename;
  ops.link = Link;
  ops.open = Open;
  ops.read = Read;
  ops.write = Write;
  // No flush: data is durable at write(); libfuse answers ENOSYS and the kernel stops sending it.
  ops.release = Release;
  // No fsync or fsyncdir: everything they would make durable already is when each call
  // returns (data, sizes, times, names). libfuse answers ENOSYS, after which the kernel
  // answers fsync(2) and fdatasync(2) itself, at no round trip.
  ops.opendir = OpenDir;
  ops.readdir = ReadDir;
  ops.readdirplus = ReadDirPlus;
  ops.releasedir = ReleaseDir;
  ops.statfs = Statfs;
  ops.setxattr = SetXattr;
  ops.getxattr = GetXattr;
  ops.listxattr = ListXattr;
  ops.removexattr = RemoveXattr;
  ops.access = Access;
  ops.create = Create;
  ops.fallocate = Fallocate;
  ops.lseek = Lseek;
  ops.ioctl = Ioctl;
  ops.copy_file_range = CopyFileRange;
  return ops;
}

// /dev/fuse I/O with one addition to the INIT reply: FUSE_HANDLE_KILLPRIV_V2, which
// libfuse 3.14 predates. Without it the kernel asks for security.capability (a GETXATTR
// round trip) before every write() to learn whether the write must clear privileges; with
// it the kernel trusts the daemon to clear them (FileSystem::KillPrivsLocked), which halves
// the round trips of small writes. The flag is only added when the kernel offered it.
ssize_t DevRead(int fd, void* buf, size_t len, void* userdata) {
  // A new request on this thread: a fault flag left from a request without a reply
  // (forget) is not this one's; the fault itself has stopped the filesystem.
  if (pmem::fault::TakeThreadFault()) CheckRegionFaults(*static_cast<Session*>(userdata));
  ssize_t n = ::read(fd, buf, len);
  constexpr size_t kInitFlagsEnd = sizeof(fuse_in_header) + offsetof(fuse_init_in, flags) + sizeof(uint32_t);
  if (n >= static_cast<ssize_t>(kInitFlagsEnd)) {
    fuse_in_header h;
    std::memcpy(&h, buf, sizeof(h));
    uint32_t flags;
    std::memcpy(&flags, static_cast<uint8_t*>(buf) + sizeof(h) + offsetof(fuse_init_in, flags), sizeof(flags));
    if (h.opcode == FUSE_INIT && (flags & FUSE_HANDLE_KILLPRIV_V2))
      static_cast<Session*>(userdata)->init_unique = h.unique;
  }
  return n;
}

// Replies (unique != 0) are also where region faults become errors: a request during
// which this worker thread faulted on the region (pmem/fault.h) is answered EIO, whatever
// its handler computed from the zeros the fault left; and a reply the kernel cannot copy
// (EFAULT: its iovecs point into a part of the region that is gone, e.g. a shrunk region
// file) has already been answered EIO by the kernel, which ends the request.
ssize_t DevWritev(int fd, iovec* iov, int count, void* userdata) {
  auto* s = static_cast<Session*>(userdata);
  fuse_out_header reply{};
  if (count >= 1 && iov[0].iov_len >= sizeof(reply)) std::memcpy(&reply, iov[0].iov_base, sizeof(reply));
  if (reply.unique != 0 && pmem::fault::TakeThreadFault()) {
    CheckRegionFaults(*s);
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    reply.error = -EIO;
    reply.len = sizeof(reply);
    iovec one{&reply, sizeof(reply)};
    spdlog::debug("request {}: region fault during the request, answered EIO", reply.unique);
    return ::writev(fd, &one, 1) < 0 ? -1 : static_cast<ssize_t>(total);
  }
  uint64_t init = s->init_unique.load();
  if (init != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(uint32_t)) {
    fuse_out_header h;
    std::memcpy(&h, iov[0].iov_base, sizeof(h));
    if (h.unique == init) {
      s->init_unique = 0;
      if (h.error == 0) {
        auto* flags = reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(iov[1].iov_base) + offsetof(fuse_init_out, flags));
        *flags |= FUSE_HANDLE_KILLPRIV_V2;
        spdlog::debug("FUSE: the daemon clears set-user-ID, set-group-ID and capabilities (HANDLE_KILLPRIV_V2)");
      }
    }
  }
  ssize_t n = ::writev(fd, iov, count);
  if (n < 0 && errno == EFAULT && reply.unique != 0) {
    s->fs->Stop("a reply could not be copied from the region (EFAULT): the region file shrank or a line is "
                "poisoned; requests that touch it answer EIO");
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    return static_cast<ssize_t>(total);  // the kernel answered EIO itself; nothing to retry
  }
  return n;
}

}  // namespace

int ServeFuse(FileSystem& fs, const ServeOptions& opts) {
  std::vector<std::string> argv_s = {"pmemfs"};
  if (opts.debug) argv_s.push_back("-d");
  for (const auto& o : opts.fuse_opts) {
    argv_s.push_back("-o");
    argv_s.push_back(o);
  }
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = MakeOps();
  Session session{&fs};
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), &session);
  if (!se) {
    spdlog::error("cannot create the FUSE session (bad -o option?)");
    return 1;
  }
  // Attributes only (negative offset): safe while the kernel waits for this daemon's reply.
  fs.SetAttrChangedHook([se](uint64_t ino) { fuse_lowlevel_notify_inval_inode(se, ino, -1, 0); });
  // SIGBUS on the region becomes EIO and a read-only filesystem, never a silent death.
  pmem::fault::Install();
  int rc = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, opts.mountpoint.c_str()) == 0) {
      fuse_custom_io io{};
      io.read = DevRead;
      io.writev = DevWritev;
      if (fuse_session_custom_io(se, &io, fuse_session_fd(se)) != 0) spdlog::warn("FUSE: custom I/O refused");
      if (fuse_daemonize(opts.foreground ? 1 : 0) == 0) {
        if (opts.on_mounted) opts.on_mounted();
        fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, 0);
        fuse_loop_cfg_set_max_threads(cfg, 16);
        // Keep the workers: with libfuse 3.14's default a worker exits when it goes idle,
        // so every request paid a thread creation (clone3, rseq, madvise... per request).
        fuse_loop_cfg_set_idle_threads(cfg, 16);
        // libfuse's signal handlers end the loop with the signal's number: SIGTERM, SIGINT
        // and SIGHUP are requests to unmount, so they are a clean exit.
        int loop = fuse_session_loop_mt(se, cfg);
        rc = (loop == 0 || loop == SIGTERM || loop == SIGINT || loop == SIGHUP) ? 0 : 1;
        fuse_loop_cfg_destroy(cfg);
      }
      fuse_session_unmount(se);
    } else {
      spdlog::error("cannot mount on {}", opts.mountpoint);
    }
    fuse_remove_signal_handlers(se);
  }
  fs.SetAttrChangedHook(nullptr);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return rc;
}

}  // namespace pmemfs::fs
