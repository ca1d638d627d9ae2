// SPDX-License-Identifier: BSD-3-Clause
#include "differential/compare.h"

#include "differential/exec.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>

namespace pmemfs::difftest {

bool Clock::Recent(int64_t s) const {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return s >= start_s && s <= now.tv_sec + 5;
}

namespace {

std::string Field(const char* name, long long p, long long t) {
  return std::string(name) + " " + std::to_string(p) + " vs " + std::to_string(t) + "; ";
}

std::string Oct(uint32_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", m);
  return buf;
}

}  // namespace

// The rules, field by field (pmemfs p against the reference t):
//  - st_mode (type and permission bits), st_uid, st_gid, st_nlink (directories included:
//    both count 2 + subdirectories), st_rdev of devices: exact.
//  - st_size: exact, except for directories, whose size POSIX leaves to the filesystem
//    (tmpfs counts 20 bytes per entry, pmemfs the bytes of its directory blocks).
//  - st_ino, st_dev: necessarily different filesystems. Hard-link identity is compared
//    instead (CompareTrees: the same set of names shares an inode on both sides).
//  - st_blksize (not even collected): a hint, any value allowed.
//  - st_blocks (collected, not compared): allocation differs legitimately: pmemfs counts
//    the block that holds a file's xattrs and allocates directories and symlink targets in
//    blocks, tmpfs counts neither; unwritten extents, partially failed fallocate under
//    ENOSPC, and the page-granular hole punching of tmpfs make counts differ further.
//  - st_mtime: equal when the reference holds a time set by utimensat; otherwise both must
//    be "now" (set by the filesystem during this run).
//  - st_atime: equal when the reference still holds a time set by utimensat; when the
//    reference updated it (relatime reads) pmemfs may have kept the old one: not updating
//    atime on read is what noatime mounts do, and Linux allows it (FUSE without writeback
//    cache never sends atime updates to the daemon).
//  - st_ctime: cannot be set; both must be "now".
std::string CompareStat(const StatInfo& p, const StatInfo& t, const Clock& clock) {
  std::string d;
  if (!p.valid || !t.valid) return p.valid == t.valid ? "" : "stat validity differs; ";
  if (p.mode != t.mode) d += "mode " + Oct(p.mode) + " vs " + Oct(t.mode) + "; ";
  if (p.uid != t.uid) d += Field("uid", p.uid, t.uid);
  if (p.gid != t.gid) d += Field("gid", p.gid, t.gid);
  if (p.nlink != t.nlink) d += Field("nlink", static_cast<long long>(p.nlink), static_cast<long long>(t.nlink));
  if ((S_ISCHR(t.mode) || S_ISBLK(t.mode)) && p.rdev != t.rdev)
    d += Field("rdev", static_cast<long long>(p.rdev), static_cast<long long>(t.rdev));
  if (!S_ISDIR(t.mode) && p.size != t.size) d += Field("size", p.size, t.size);
  auto time = [&](const char* name, int64_t ps, int64_t pns, int64_t ts, int64_t tns, bool strict_now) {
    if (!clock.Recent(ts)) {
      if (ps != ts || pns != tns)
        d += std::string(name) + " " + std::to_string(ps) + "." + std::to_string(pns) + " vs explicit " +
             std::to_string(ts) + "." + std::to_string(tns) + "; ";
    } else if (strict_now && !clock.Recent(ps)) {
      d += std::string(name) + " " + std::to_string(ps) + "." + std::to_string(pns) + " is not recent (reference " +
           std::to_string(ts) + "); ";
    }
  };
  time("mtime", p.mtime_s, p.mtime_ns, t.mtime_s, t.mtime_ns, true);
  time("atime", p.atime_s, p.atime_ns, t.atime_s, t.atime_ns, false);
  if (!clock.Recent(p.ctime_s)) d += Field("ctime (not recent)", p.ctime_s, t.ctime_s);
  return d;
}

namespace {

// Data segments of `fd` within [0, size): SEEK_DATA/SEEK_HOLE, or the whole file when the
// filesystem does not answer them.
std::vector<std::pair<int64_t, int64_t>> Segments(int fd, int64_t size) {
  std::vector<std::pair<int64_t, int64_t>> segs;
  for (int64_t off = 0; off < size;) {
    off_t d = ::lseek(fd, off, SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) break;
      return {{0, size}};
    }
    off_t h = ::lseek(fd, d, SEEK_HOLE);
    if (h < 0 || h <= d) return {{0, size}};
    segs.push_back({d, std::min<int64_t>(h, size)});
    off = h;
  }
  return segs;
}

}  // namespace

std::string CompareContent(int pfd, int tfd, int64_t size) {
  auto a = Segments(pfd, size), b = Segments(tfd, size);
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  std::vector<std::pair<int64_t, int64_t>> segs;
  for (auto& s : a) {
    if (!segs.empty() && s.first <= segs.back().second) segs.back().second = std::max(segs.back().second, s.second);
    else segs.push_back(s);
  }
  int64_t total = 0;
  for (auto& s : segs) total += s.second - s.first;
  if (total > (int64_t{512} << 20))
    return "data segments cover " + std::to_string(total) + " bytes: more than the filesystem can hold";
  std::string pb(1 << 20, '\0'), tb(1 << 20, '\0');
  for (auto& [start, end] : segs) {
    for (int64_t off = start; off < end;) {
      size_t n = static_cast<size_t>(std::min<int64_t>(end - off, static_cast<int64_t>(pb.size())));
      ssize_t pr = ::pread(pfd, pb.data(), n, off), tr = ::pread(tfd, tb.data(), n, off);
      if (pr < 0) return "pmemfs read at " + std::to_string(off) + ": " + ErrName(errno);
      if (tr < 0) return "reference read at " + std::to_string(off) + ": " + ErrName(errno);
      if (pr != tr) return "read at " + std::to_string(off) + " returned " + std::to_string(pr) + " vs " + std::to_string(tr);
      if (pr == 0) break;
      if (std::memcmp(pb.data(), tb.data(), static_cast<size_t>(pr)) != 0) {
        size_t i = 0;
        while (pb[i] == tb[i]) ++i;
        size_t j = i, pz = 0;
        while (j < static_cast<size_t>(pr) && pb[j] != tb[j]) pz += pb[j] == 0, ++j;
        return "content differs at offset " + std::to_string(off + static_cast<int64_t>(i)) + " for " +
               std::to_string(j - i) + " bytes (" + std::to_string(pz) + " of them zero on pmemfs)";
      }
      off += pr;
    }
  }
  return "";
}

namespace {

bool ReadXattrs(const std::string& path, std::vector<std::pair<std::string, std::string>>* out, std::string* err) {
  std::string names(1 << 16, '\0');
  ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) {
    if (errno == EOPNOTSUPP) return true;
    *err = "llistxattr " + path + ": " + ErrName(errno);
    return false;
  }
  std::string value(1 << 16, '\0');
  for (ssize_t pos = 0; pos < n;) {
    std::string name(names.data() + pos);
    pos += static_cast<ssize_t>(name.size()) + 1;
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (v < 0) {
      *err = "lgetxattr " + path + " " + Quote(name) + ": " + ErrName(errno);
      return false;
    }
    out->push_back({name, value.substr(0, static_cast<size_t>(v))});
  }
  std::sort(out->begin(), out->end());
  return true;
}

// `rel` by value: it usually names an element of `out`, which push_back moves.
bool WalkDir(const std::string& root, std::string rel, std::vector<Node>* out, std::string* err, bool xattrs,
             bool sync) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);
  if (fd < 0) {
    *err = "open directory " + Quote(rel) + ": " + ErrName(errno);
    return false;
  }
  std::vector<std::string> names;
  alignas(8) char buf[32768];
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) {
      *err = "getdents " + Quote(rel) + ": " + ErrName(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + pos);
      pos += d->d_reclen;
      std::string name = d->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
  }
  ::close(fd);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    Node node;
    node.rel = rel.empty() ? name : rel + "/" + name;
    std::string p = root + "/" + node.rel;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) {
      *err = "lstat " + Quote(node.rel) + ": " + ErrName(errno);
      return false;
    }
    node.st = ToInfo(st);
    if (sync && !SyncStat(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW, &node.st)) {
      *err = "statx " + Quote(node.rel) + ": " + ErrName(errno);
      return false;
    }
    if (S_ISLNK(st.st_mode)) {
      std::string t(8192, '\0');
      ssize_t n = ::readlink(p.c_str(), t.data(), t.size());
      if (n < 0) {
        *err = "readlink " + Quote(node.rel) + ": " + ErrName(errno);
        return false;
      }
      node.target = t.substr(0, static_cast<size_t>(n));
    }
    if (xattrs && !ReadXattrs(p, &node.xattrs, err)) return false;
    bool dir = S_ISDIR(st.st_mode);
    out->push_back(std::move(node));
    if (dir && !WalkDir(root, out->back().rel, out, err, xattrs, sync)) return false;
  }
  return true;
}

}  // namespace

bool Walk(const std::string& root, std::vector<Node>* out, std::string* err, bool with_xattrs, bool sync) {
  out->clear();
  Node top;
  struct stat st;
  if (::lstat(root.c_str(), &st) != 0) {
    *err = "lstat root: " + ErrName(errno);
    return false;
  }
  top.st = ToInfo(st);
  if (sync && !SyncStat(AT_FDCWD, root, AT_SYMLINK_NOFOLLOW, &top.st)) {
    *err = "statx root: " + ErrName(errno);
    return false;
  }
  if (with_xattrs && !ReadXattrs(root, &top.xattrs, err)) return false;
  out->push_back(top);
  if (!WalkDir(root, "", out, err, with_xattrs, sync)) return false;
  std::sort(out->begin(), out->end(), [](const Node& a, const Node& b) { return a.rel < b.rel; });
  return true;
}

std::string CompareTrees(const std::string& proot, const std::string& troot, const Clock& clock) {
  std::vector<Node> p, t;
  std::string err;
  if (!Walk(troot, &t, &err)) return "reference tree unreadable (harness bug): " + err;
  if (!Walk(proot, &p, &err, true, true)) return "pmemfs tree unreadable: " + err;
  std::string d;
  int shown = 0;
  auto add = [&](const std::string& s) {
    if (shown++ < 12) d += "  " + s + "\n";
  };
  // Hard-link identity: each inode is named by the first path holding it.
  std::map<uint64_t, std::string> pfirst, tfirst;
  std::map<std::string, const Node*> pmap;
  for (auto& n : p) pmap[n.rel] = &n, pfirst.emplace(n.st.ino, n.rel);
  for (auto& n : t) tfirst.emplace(n.st.ino, n.rel);
  std::map<std::string, bool> seen;
  for (auto& tn : t) {
    auto it = pmap.find(tn.rel);
    if (it == pmap.end()) {
      add(Quote(tn.rel) + ": missing on pmemfs");
      continue;
    }
    seen[tn.rel] = true;
    const Node& pn = *it->second;
    std::string sd = CompareStat(pn.st, tn.st, clock);
    if (!sd.empty()) add(Quote(tn.rel) + ": " + sd);
    if (pfirst[pn.st.ino] != tfirst[tn.st.ino])
      add(Quote(tn.rel) + ": is a hard link of " + Quote(pfirst[pn.st.ino]) + " on pmemfs, of " + Quote(tfirst[tn.st.ino]) +
          " on the reference");
    if (pn.target != tn.target) add(Quote(tn.rel) + ": symlink target " + Quote(pn.target) + " vs " + Quote(tn.target));
    if (pn.xattrs != tn.xattrs) {
      std::string pl, tl;
      for (auto& [k, v] : pn.xattrs) pl += Quote(k) + "(" + std::to_string(v.size()) + ") ";
      for (auto& [k, v] : tn.xattrs) tl += Quote(k) + "(" + std::to_string(v.size()) + ") ";
      add(Quote(tn.rel) + ": xattrs [" + pl + "] vs [" + tl + "]");
    }
    if (S_ISREG(tn.st.mode) && S_ISREG(pn.st.mode) && pn.st.size == tn.st.size && tfirst[tn.st.ino] == tn.rel) {
      std::string pp = proot + (tn.rel.empty() ? "" : "/" + tn.rel), tp = troot + (tn.rel.empty() ? "" : "/" + tn.rel);
      int pfd = ::open(pp.c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC | O_NONBLOCK);
      int pe = errno;
      int tfd = ::open(tp.c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC | O_NONBLOCK);
      if (pfd < 0) add(Quote(tn.rel) + ": pmemfs open: " + ErrName(pe));
      else if (tfd < 0) add(Quote(tn.rel) + ": reference open: " + ErrName(errno));
      else if (std::string c = CompareContent(pfd, tfd, tn.st.size); !c.empty()) add(Quote(tn.rel) + ": " + c);
      if (pfd >= 0) ::close(pfd);
      if (tfd >= 0) ::close(tfd);
    }
  }
  for (auto& pn : p)
    if (!seen.count(pn.rel)) add(Quote(pn.rel) + ": exists only on pmemfs");
  if (shown > 12) d += "  ... " + std::to_string(shown - 12) + " more\n";
  return d;
}

}  // namespace pmemfs::difftest
