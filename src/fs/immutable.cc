// SPDX-License-Identifier: BSD-3-Clause
// Immutable extents: setting the flag prepares the file for direct mapping (holes and
// unwritten extents become zeroed written blocks; units of the alignment that are not one
// aligned physical run are copied to one), then records the flag. While it is set, every
// operation that would change the map or the size is refused with EPERM.
#include "fs/immutable.h"

#include <linux/capability.h>
#include <spdlog/spdlog.h>
#include <sys/xattr.h>

#include <sys/stat.h>

#include <bit>
#include <charconv>
#include <cstring>

#include "extent/records.h"
#include "fs/filesystem.h"

namespace pmemfs::fs {

using extent::ExtentMap;
using extent::Run;
using extent::Tx;
using format::Extent;
using format::Inode;
using format::kBlockSize;

Result<uint64_t> ParseAlignment(std::string_view v, uint64_t region_align) {
  while (!v.empty() && (v.back() == '\n' || v.back() == '\0')) v.remove_suffix(1);
  if (v == "0") return uint64_t{0};
  if (v == "1") return std::max<uint64_t>(region_align, kBlockSize);
  uint64_t mult = 1;
  if (!v.empty()) {
    switch (v.back()) {
      case 'K': case 'k': mult = 1ull << 10; break;
      case 'M': case 'm': mult = 1ull << 20; break;
      case 'G': case 'g': mult = 1ull << 30; break;
      default: break;
    }
    if (mult != 1) v.remove_suffix(1);
  }
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n == 0 || n > (1ull << 30) / mult)
    return Err(EINVAL, "immutable_extents: not 0, 1 or a size");
  n *= mult;
  if (!std::has_single_bit(n) || n < kBlockSize) return Err(EINVAL, "immutable_extents: alignment must be a power of two >= 4K");
  // Below the region's mapping alignment the extents could not be mapped (a device-dax maps
  // only at multiples of its alignment): raised to it; getfattr shows the effective value.
  return std::max(n, region_align);
}

std::string FormatSize(uint64_t b) {
  if (b >= (1ull << 30) && b % (1ull << 30) == 0) return std::to_string(b >> 30) + "G";
  if (b >= (1ull << 20) && b % (1ull << 20) == 0) return std::to_string(b >> 20) + "M";
  if (b >= (1ull << 10) && b % (1ull << 10) == 0) return std::to_string(b >> 10) + "K";
  return std::to_string(b);
}

Status FileSystem::CheckImmutableChangeLocked(uint64_t ino, const Inode& in, const char* op) {
  if (!(in.flags & format::kInodeImmutableExtents)) return Ok();
  std::lock_guard lk(error_mu_);
  auto [it, inserted] = refusals_logged_.emplace(ino, in.generation);
  if (inserted || it->second != in.generation) {
    it->second = in.generation;
    spdlog::info("inode {}: {} refused: the file has immutable extents", ino, op);
  }
  return Err(EPERM, "file has immutable extents");
}

Result<std::string> FileSystem::GetVirtualXattr(uint64_t ino, std::string_view name) {
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (name == kImmutableXattr) {
    if (!S_ISREG(in.mode)) return Err(ENODATA, "only regular files carry immutable extents");
    if (!(in.flags & format::kInodeImmutableExtents)) return std::string("0");
    return FormatSize(uint64_t{1} << in.align_shift);
  }
  // kExtentsXattr: "LOGICAL REGION LENGTH FLAGS" per extent, in bytes.
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(*n, in));
  std::string out;
  for (const auto& [lblk, entry] : map->entries()) {
    const Extent& e = entry.e;
    out += std::to_string(e.lblk * kBlockSize) + " " + std::to_string(e.pblk * kBlockSize) + " " +
           std::to_string(uint64_t{e.len} * kBlockSize) + " " +
           ((e.flags & format::kExtentUnwritten) ? "unwritten" : "-") + "\n";
  }
  return out;
}

Status FileSystem::SetVirtualXattr(const Ctx& ctx, uint64_t ino, std::string_view name, std::string_view value,
                                   int flags) {
  if (name == kExtentsXattr) return Err(EPERM, "user.pmemfs.extents is read-only");
  if (flags & XATTR_CREATE) return Err(EEXIST, "immutable_extents always exists");
  PMEMFS_ASSIGN_OR_RETURN(uint64_t align, ParseAlignment(value, region_->alignment()));
  NodeRef n = GetNode(ino);
  std::unique_lock lk(n->mu);
  PMEMFS_TRY(Writable());
  return align ? SetImmutableLocked(ctx, *n, align) : ClearImmutableLocked(ctx, *n);
}

Status FileSystem::RemoveVirtualXattr(const Ctx& ctx, uint64_t ino, std::string_view name) {
  if (name == kExtentsXattr) return Err(EPERM, "user.pmemfs.extents is read-only");
  NodeRef n = GetNode(ino);
  std::unique_lock lk(n->mu);
  PMEMFS_TRY(Writable());
  return ClearImmutableLocked(ctx, *n);
}

static Status MayChangeFlag(const Ctx& ctx, const Inode& in, bool user_immutable) {
  if (!S_ISREG(in.mode)) return Err(EINVAL, "immutable extents apply to regular files only");
  if (user_immutable && ctx.uid == in.uid) return Ok();
  if (ctx.Has(CAP_LINUX_IMMUTABLE)) return Ok();
  return Err(EPERM, "changing immutable extents needs CAP_LINUX_IMMUTABLE (or -o user_immutable as owner)");
}

Status FileSystem::ClearImmutableLocked(const Ctx& ctx, Node& n) {
  const uint64_t ino = n.ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_TRY(MayChangeFlag(ctx, in, opts_.user_immutable));
  if (!(in.flags & format::kInodeImmutableExtents)) return Ok();
  {
    std::lock_guard tl(table_mu_);
    if (n.leases > 0) return Err(EBUSY, "the file is directly mapped");
  }
  Tx tx(*region_);
  in.flags &= ~format::kInodeImmutableExtents;
  in.align_shift = 0;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  in.ctime = format::Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec), 0};
  PutInode(tx, ino, in);
  return Commit(tx);
}

namespace {

// True when logical unit [lo, lo+a) is one physical run starting at a multiple of `a`.
bool UnitAligned(const ExtentMap& map, uint64_t lo, uint64_t a) {
  uint64_t start = 0;
  for (uint64_t pos = lo; pos < lo + a;) {
    const Extent* e = map.Next(pos);
    if (!e || e->lblk > pos) return false;
    uint64_t p = e->pblk + (pos - e->lblk);
    if (pos == lo) {
      if (p % a) return false;
      start = p;
    } else if (p != start + (pos - lo)) {
      return false;
    }
    pos = std::min(lo + a, e->lblk + e->len);
  }
  return true;
}

}  // namespace

Status FileSystem::PrepareUnitLocked(Node& node, uint64_t lo, uint64_t a) {
  const uint64_t ino = node.ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(node, in));
  PMEMFS_ASSIGN_OR_RETURN(Run r, alloc_.Reserve(a, 0, a, true));
  Tx tx(*region_);
  DropCaches(tx, node);
  alloc_.StageUse(tx, r);
  // Copy the unit's contents (zeros for holes and unwritten blocks) into the new run; it is
  // unreachable until the commit, whose first fence drains these stores.
  for (uint64_t pos = lo; pos < lo + a;) {
    const Extent* e = map->Next(pos);
    uint64_t dst = (r.start + (pos - lo)) * kBlockSize;
    if (!e || e->lblk >= lo + a) {
      region_->ZeroFlush(dst, (lo + a - pos) * kBlockSize);
      break;
    }
    if (e->lblk > pos) {
      region_->ZeroFlush(dst, (e->lblk - pos) * kBlockSize);
      pos = e->lblk;
      continue;
    }
    uint64_t n = std::min(lo + a, e->lblk + e->len) - pos;
    dst = (r.start + (pos - lo)) * kBlockSize;
    if (e->flags & format::kExtentUnwritten) region_->ZeroFlush(dst, n * kBlockSize);
    else region_->CopyFlush(dst, region_->base() + (e->pblk + (pos - e->lblk)) * kBlockSize, n * kBlockSize);
    pos += n;
  }
  std::vector<Run> freed;
  PMEMFS_TRY(map->Remove(tx, in, lo, a, &freed, alloc_));
  for (const Run& f : freed) {
    alloc_.StageFree(tx, f);
    in.blocks -= f.len;
  }
  PMEMFS_TRY(map->Insert(tx, in, Extent{lo, r.start, static_cast<uint32_t>(a), 0}, alloc_));
  in.blocks += a;
  PutInode(tx, ino, in);
  return Commit(tx);
}

Status FileSystem::SetImmutableLocked(const Ctx& ctx, Node& node, uint64_t align) {
  const uint64_t ino = node.ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_TRY(MayChangeFlag(ctx, in, opts_.user_immutable));
  uint8_t shift = static_cast<uint8_t>(std::countr_zero(align));
  if (in.flags & format::kInodeImmutableExtents) {
    if (in.align_shift == shift) return Ok();
    std::lock_guard tl(table_mu_);
    if (node.leases > 0) return Err(EBUSY, "the file is directly mapped");
  }
  const uint64_t a = align / kBlockSize;
  const uint64_t units = (in.size + align - 1) / align;
  // The mapping exposes the file up to its last aligned unit: nothing past EOF may hold
  // old data (a tail left by a truncate, or blocks an interrupted truncate did not free).
  PMEMFS_TRY(ClearPastEofLocked(node, units * align));
  PMEMFS_ASSIGN_OR_RETURN(in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(node, in));

  // Space first, so that ENOSPC changes nothing: a conservative count of the blocks needed.
  uint64_t need = 0;
  for (uint64_t u = 0; u < units; ++u) {
    if (!UnitAligned(*map, u * a, a)) need += a;
  }
  if (need > alloc_.free_blocks()) return Err(ENOSPC, "no space to prepare immutable extents");

  // Each step is one transaction that keeps the file's contents; the flag comes last, so a
  // crash part-way leaves the same contents and no flag.
  for (uint64_t u = 0; u < units; ++u) {
    PMEMFS_ASSIGN_OR_RETURN(Inode cur, LoadInode(ino));
    PMEMFS_ASSIGN_OR_RETURN(map, Extents(node, cur));
    bool aligned = UnitAligned(*map, u * a, a);
    bool unwritten = false;
    for (uint64_t pos = u * a; aligned && pos < (u + 1) * a;) {
      const Extent* e = map->Next(pos);
      unwritten |= (e->flags & format::kExtentUnwritten) != 0;
      pos = e->lblk + e->len;
    }
    if (aligned && !unwritten) continue;
    if (aligned) {
      // Zero the unwritten blocks in place and mark them written.
      Tx tx(*region_);
      DropCaches(tx, node);
      for (uint64_t pos = u * a; pos < (u + 1) * a;) {
        const Extent* e = map->Next(pos);
        uint64_t n = std::min((u + 1) * a, e->lblk + e->len) - pos;
        if (e->flags & format::kExtentUnwritten)
          region_->ZeroFlush((e->pblk + (pos - e->lblk)) * kBlockSize, n * kBlockSize);
        pos += n;
      }
      PMEMFS_TRY(map->SetFlags(tx, cur, u * a, a, 0, alloc_));
      PutInode(tx, ino, cur);
      PMEMFS_TRY(Commit(tx));
      continue;
    }
    PMEMFS_TRY(PrepareUnitLocked(node, u * a, a));
  }

  PMEMFS_ASSIGN_OR_RETURN(Inode fin, LoadInode(ino));
  Tx tx(*region_);
  fin.flags |= format::kInodeImmutableExtents;
  fin.align_shift = shift;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  fin.ctime = format::Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec), 0};
  PutInode(tx, ino, fin);
  PMEMFS_TRY(Commit(tx));
  spdlog::info("inode {}: immutable extents set, alignment {}", ino, FormatSize(align));
  return Ok();
}

}  // namespace pmemfs::fs

namespace pmemfs::fs {

namespace {

// What the caller of `ctx` could get by opening the region itself (issue 14): a lease
// promises nothing the region's permissions would not give, so a user who cannot map a file
// cannot pin its flag, and a lease is writable only for one who could write the region.
// The region's mode bits, and search permission on each directory of its path, against the
// caller's fsuid, fsgid and supplementary groups (ctx.InGroup); CAP_DAC_OVERRIDE gives both, CAP_DAC_READ_SEARCH reading, as the
// kernel's generic_permission decides (capabilities through ctx.Has, the one capability
// check). POSIX ACLs on the region are not consulted: mode bits only (documented).
// A region without a path (memory, tests) is open to privileged callers only.
struct RegionAccessBits {
  bool read = false, write = false;
};

RegionAccessBits RegionAccess(const Ctx& ctx, const std::string& path) {
  RegionAccessBits a;
  auto bits = [&](const struct stat& st) {
    return ctx.uid == st.st_uid ? (st.st_mode >> 6) : ctx.InGroup(st.st_gid) ? (st.st_mode >> 3) : st.st_mode;
  };
  struct stat st {};
  if (!path.empty() && path[0] == '/' && ::stat(path.c_str(), &st) == 0) {
    a.read = bits(st) & 4;
    a.write = bits(st) & 2;
    // Opening it also needs search permission on every directory on the way.
    for (size_t slash = path.find('/', 1); slash != std::string::npos && (a.read || a.write);
         slash = path.find('/', slash + 1)) {
      struct stat dir {};
      if (::stat(path.substr(0, slash).c_str(), &dir) != 0 ||
          (!(bits(dir) & 1) && !ctx.Has(CAP_DAC_READ_SEARCH) && !ctx.Has(CAP_DAC_OVERRIDE)))
        a.read = a.write = false;
    }
    if (::stat("/", &st) == 0 && !(bits(st) & 1) && !ctx.Has(CAP_DAC_READ_SEARCH) && !ctx.Has(CAP_DAC_OVERRIDE))
      a.read = a.write = false;
  }
  if (!a.write && ctx.Has(CAP_DAC_OVERRIDE)) a.read = a.write = true;
  if (!a.read && ctx.Has(CAP_DAC_READ_SEARCH)) a.read = true;
  return a;
}

}  // namespace

Result<FileSystem::LeaseInfo> FileSystem::Lease(const Ctx& ctx, uint64_t ino, bool take, bool want_write) {
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (!(in.flags & format::kInodeImmutableExtents)) return Err(EINVAL, "file has no immutable extents");
  RegionAccessBits access = RegionAccess(ctx, region_->path());
  if (!access.read) return Err(EACCES, "lease refused: the caller could not open the region itself");
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(*n, in));
  LeaseInfo info;
  info.file_size = in.size;
  info.align = uint64_t{1} << in.align_shift;
  info.writable = want_write && access.write && Writable().ok();
  for (const auto& [lblk, entry] : map->entries()) {
    const Extent& e = entry.e;
    info.extents.push_back({e.lblk * kBlockSize, e.pblk * kBlockSize, uint64_t{e.len} * kBlockSize});
  }
  if (take) {
    std::lock_guard tl(table_mu_);
    n->leases++;
  }
  return info;
}

void FileSystem::DropLease(uint64_t ino) {
  std::lock_guard tl(table_mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end() && it->second->leases > 0) it->second->leases--;
}

Status FileSystem::Touch(const Ctx& ctx, uint64_t ino) {
  NodeRef n = GetNode(ino);
  std::unique_lock lk(n->mu);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (!(in.flags & format::kInodeImmutableExtents)) return Err(EINVAL, "touch: file has no immutable extents");
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  in.mtime = in.ctime = format::Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec), 0};
  Tx tx(*region_);
  DropCaches(tx, *n);
  PMEMFS_TRY(KillPrivsLocked(ctx, tx, *n, in, /*chown=*/false));
  PutInode(tx, ino, in);  // the whole inode, time word included, through the journal
  // The kernel caches attributes for a second and saw no write: it must fetch them again.
  if (attr_changed_) tx.OnCommit([this, ino] { attr_changed_(ino); });
  return Commit(tx);
}

bool FileSystem::HasImmutableExtents(uint64_t ino) {
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  auto in = LoadInode(ino);
  return in.ok() && (in->flags & format::kInodeImmutableExtents);
}

}  // namespace pmemfs::fs
