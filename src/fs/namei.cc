// SPDX-License-Identifier: BSD-3-Clause
// Namespace operations: lookup, create, link, unlink, rename, readdir.
//
// Locking (filesystem.h): a directory's node before the nodes of the inodes its entries
// name; a rename between two directories holds rename_mu_ and locks the two directories
// ancestor first (unrelated ones by inode number), with their ancestry learnt before any
// of them is locked; the entries' inodes of one operation are locked by inode number; the
// orphan list's lock comes after all of them.
#include <linux/fs.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "extent/records.h"
#include "fs/filesystem.h"

namespace pmemfs::fs {

using extent::Tx;
using format::Inode;
using format::kBlockSize;

namespace {

constexpr uint32_t kMaxLinks = 65000;
constexpr size_t kMaxSymlink = 4095;

Status ValidName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return Err(EINVAL, "invalid name");
  if (name.size() > format::kMaxNameLen) return Err(ENAMETOOLONG, "name longer than 255 bytes");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    return Err(EINVAL, "name contains '/' or NUL");
  return Ok();
}

format::Timespec Now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return format::Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0};
}

using ExclusiveLock = std::unique_lock<std::shared_mutex>;

}  // namespace

Result<Entry> FileSystem::Lookup(uint64_t parent, std::string_view name) {
  if (name.size() > format::kMaxNameLen) return Err(ENAMETOOLONG, "name longer than 255 bytes");
  NodeRef pn = GetNode(parent);
  uint64_t up;
  {
    std::shared_lock pl(pn->mu);
    PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
    if (name == ".") return MakeEntry(*pn, pin);  // also for non-directories (NFS export)
    if (!S_ISDIR(pin.mode)) return Err(ENOTDIR, "lookup in a non-directory");
    if (name != "..") {
      PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(*pn, pin));
      int64_t slot = d->Find(name);
      if (slot < 0) return Err(ENOENT, "no such entry");
      uint64_t ino = d->At(slot).ino;
      if (ino == parent) return Err(EUCLEAN, "directory entry names its own directory");
      NodeRef cn = GetNode(ino);
      std::shared_lock cl(cn->mu);
      PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
      return MakeEntry(*cn, in);
    }
    up = pin.parent;
  }
  // "..": up the tree, so only after letting go of the directory.
  NodeRef un = GetNode(up);
  std::shared_lock ul(un->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(up));
  return MakeEntry(*un, in);
}

Status FileSystem::AddEntryLocked(Tx& tx, Node& dn, std::string_view name, uint64_t ino, uint32_t mode) {
  Inode din = TxInode(tx, dn.ino);
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(dn, din));
  DropCaches(tx, dn);
  int64_t slot = d->FindFree(static_cast<uint32_t>(name.size()));
  if (slot < 0) {
    // Grow the directory by one block, next to its last one when possible.
    PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(dn, din));
    uint64_t goal = map->entries().empty() ? 0 : std::prev(map->entries().end())->second.e.pblk + 1;
    PMEMFS_ASSIGN_OR_RETURN(extent::Run r, alloc_.Reserve(1, goal, 1, true));
    alloc_.StageUse(tx, r);
    // The block is unreachable until this transaction commits; its zeroes are drained by
    // the commit's first fence, before the log makes it part of the directory.
    region_->ZeroFlush(format::BlockOff(r.start), kBlockSize);
    PMEMFS_TRY(map->Insert(tx, din, format::Extent{d->nblocks(), r.start, 1, 0}, alloc_));
    din.blocks += 1;
    din.size += kBlockSize;
    d->AddBlock(format::BlockOff(r.start));
    slot = d->FindFree(static_cast<uint32_t>(name.size()));
    if (slot < 0) return Err(EIO, "directory block has no room for an entry");
  }
  d->StageAdd(tx, static_cast<uint64_t>(slot), name, ino, ModeType(mode));
  din.mtime = din.ctime = Now();
  PutInode(tx, dn.ino, din);
  return Ok();
}

Result<Entry> FileSystem::CreateLocked(const Ctx& ctx, Node& pn, std::string_view name, uint32_t mode,
                                       uint64_t rdev, std::string_view target) {
  PMEMFS_TRY(Writable());
  PMEMFS_TRY(ValidName(name));
  const uint64_t parent = pn.ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
  if (!S_ISDIR(pin.mode)) return Err(ENOTDIR, "parent is not a directory");
  if (pin.nlink == 0) return Err(ENOENT, "parent directory was removed");
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(pn, pin));
  if (d->Find(name) >= 0) return Err(EEXIST, "name exists");
  bool is_dir = S_ISDIR(mode);
  if (is_dir && pin.nlink >= kMaxLinks) return Err(EMLINK, "too many subdirectories");
  if (target.size() > kMaxSymlink) return Err(ENAMETOOLONG, "symlink target too long");

  Tx tx(*region_);
  PMEMFS_ASSIGN_OR_RETURN(uint64_t ino, ibitmap_.Allocate(tx));
  // Nobody else can name the new inode before the commit; its lock is taken all the same.
  NodeRef cn = GetNode(ino);
  ExclusiveLock cl(cn->mu);
  DropCaches(tx, *cn);
  Inode old = TxInode(tx, ino);
  Inode in{};
  in.mode = mode;
  in.uid = ctx.uid;
  in.gid = ctx.gid;
  if (pin.mode & S_ISGID) {  // BSD group semantics in setgid directories
    in.gid = pin.gid;
    if (is_dir) in.mode |= S_ISGID;
  }
  in.nlink = is_dir ? 2 : 1;
  in.generation = old.generation + 1 ? old.generation + 1 : 1;
  in.atime = in.mtime = in.ctime = in.btime = Now();
  in.parent = is_dir ? parent : 0;
  in.rdev = rdev;
  if (!target.empty()) {
    // The target is the symlink's data: one block, written before the commit exposes it.
    PMEMFS_ASSIGN_OR_RETURN(extent::Run r, alloc_.Reserve(1, 0, 1, true));
    alloc_.StageUse(tx, r);
    region_->ZeroFlush(format::BlockOff(r.start), kBlockSize);
    region_->CopyFlush(format::BlockOff(r.start), target.data(), target.size());
    auto map = extent::ExtentMap::Load(*region_, sb_, ino, in);
    if (!map.ok()) return Error(map.error());
    PMEMFS_TRY(map->Insert(tx, in, format::Extent{0, r.start, 1, 0}, alloc_));
    in.blocks = 1;
    in.size = target.size();
  }
  PutNewInode(tx, ino, in);
  PMEMFS_TRY(AddEntryLocked(tx, pn, name, ino, mode));
  if (is_dir) {
    Inode p = TxInode(tx, parent);
    p.nlink++;
    PutInode(tx, parent, p);
  }
  PMEMFS_TRY(Commit(tx));
  return MakeEntry(*cn, in);
}

Result<Entry> FileSystem::Mknod(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode,
                                uint64_t rdev) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  else if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
    return Err(EINVAL, "mknod of an unsupported type");
  NodeRef pn = GetNode(parent);
  ExclusiveLock pl(pn->mu);
  return CreateLocked(ctx, *pn, name, mode, rdev, {});
}

Result<Entry> FileSystem::Mkdir(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode) {
  NodeRef pn = GetNode(parent);
  ExclusiveLock pl(pn->mu);
  return CreateLocked(ctx, *pn, name, S_IFDIR | (mode & 07777), 0, {});
}

Result<Entry> FileSystem::Symlink(const Ctx& ctx, uint64_t parent, std::string_view name,
                                  std::string_view target) {
  if (target.empty()) return Err(ENOENT, "empty symlink target");
  NodeRef pn = GetNode(parent);
  ExclusiveLock pl(pn->mu);
  return CreateLocked(ctx, *pn, name, S_IFLNK | 0777, 0, target);
}

Result<std::string> FileSystem::Readlink(uint64_t ino) {
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (!S_ISLNK(in.mode)) return Err(EINVAL, "not a symlink");
  PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(*n, in));
  const format::Extent* e = map->Next(0);
  if (!e || e->lblk != 0 || in.size == 0 || in.size > kMaxSymlink) {
    ReportDamage(ino, "symlink has no target");
    return Err(EUCLEAN, "symlink has no target");
  }
  return std::string(region_->At<const char>(format::BlockOff(e->pblk)), in.size);
}

Result<Entry> FileSystem::Link(uint64_t ino, uint64_t newparent, std::string_view newname) {
  PMEMFS_TRY(ValidName(newname));
  if (ino == newparent) return Err(EPERM, "hard link to a directory");
  NodeRef pn = GetNode(newparent);
  ExclusiveLock pl(pn->mu);
  NodeRef n = GetNode(ino);
  ExclusiveLock l(n->mu);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (S_ISDIR(in.mode)) return Err(EPERM, "hard link to a directory");
  if (in.nlink == 0) return Err(ENOENT, "link to a removed file");
  if (in.nlink >= kMaxLinks) return Err(EMLINK, "too many links");
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(newparent));
  if (!S_ISDIR(pin.mode)) return Err(ENOTDIR, "parent is not a directory");
  if (pin.nlink == 0) return Err(ENOENT, "parent directory was removed");
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(*pn, pin));
  if (d->Find(newname) >= 0) return Err(EEXIST, "name exists");
  Tx tx(*region_);
  PMEMFS_TRY(AddEntryLocked(tx, *pn, newname, ino, in.mode));
  in = TxInode(tx, ino);
  in.nlink++;
  in.ctime = Now();
  PutInode(tx, ino, in);
  PMEMFS_TRY(Commit(tx));
  return MakeEntry(*n, in);
}

void FileSystem::DropLinkLocked(Tx& tx, uint64_t ino, std::unique_lock<std::mutex>& orphans) {
  Inode in = TxInode(tx, ino);
  in.nlink = S_ISDIR(in.mode) ? 0 : in.nlink - 1;
  in.ctime = Now();
  if (in.nlink == 0) {
    if (!orphans.owns_lock()) orphans.lock();
    OrphanAddLocked(tx, ino, in);
  }
  PutInode(tx, ino, in);
}

Status FileSystem::Unlink(uint64_t parent, std::string_view name) {
  uint64_t ino;
  {
    NodeRef pn = GetNode(parent);
    ExclusiveLock pl(pn->mu);
    PMEMFS_TRY(Writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
    PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(*pn, pin));
    int64_t slot = d->Find(name);
    if (slot < 0) return Err(ENOENT, "no such entry");
    ino = d->At(slot).ino;
    if (ino == parent) return Err(EUCLEAN, "directory entry names its own directory");
    NodeRef n = GetNode(ino);
    ExclusiveLock l(n->mu);
    PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
    if (S_ISDIR(in.mode)) return Err(EISDIR, "unlink of a directory");
    PMEMFS_TRY(CheckImmutableChangeLocked(ino, in, "unlink"));
    std::unique_lock orphans(orphan_mu_, std::defer_lock);
    Tx tx(*region_);
    DropCaches(tx, *pn);
    d->StageRemove(tx, slot);
    pin.mtime = pin.ctime = Now();
    PutInode(tx, parent, pin);
    DropLinkLocked(tx, ino, orphans);
    PMEMFS_TRY(Commit(tx));
  }
  MaybeFree(ino);  // usually the kernel still holds it: freed at its FORGET
  return Ok();
}

Status FileSystem::Rmdir(uint64_t parent, std::string_view name) {
  if (name == ".") return Err(EINVAL, "rmdir of .");
  if (name == "..") return Err(ENOTEMPTY, "rmdir of ..");
  uint64_t ino;
  {
    NodeRef pn = GetNode(parent);
    ExclusiveLock pl(pn->mu);
    PMEMFS_TRY(Writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
    PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(*pn, pin));
    int64_t slot = d->Find(name);
    if (slot < 0) return Err(ENOENT, "no such entry");
    ino = d->At(slot).ino;
    if (ino == parent) return Err(EUCLEAN, "directory entry names its own directory");
    NodeRef n = GetNode(ino);
    ExclusiveLock l(n->mu);
    PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
    if (!S_ISDIR(in.mode)) return Err(ENOTDIR, "rmdir of a non-directory");
    PMEMFS_ASSIGN_OR_RETURN(DirIndex * child, Dir(*n, in));
    if (child->size() > 0) return Err(ENOTEMPTY, "directory not empty");
    std::unique_lock orphans(orphan_mu_, std::defer_lock);
    Tx tx(*region_);
    DropCaches(tx, *pn);
    d->StageRemove(tx, slot);
    pin.mtime = pin.ctime = Now();
    pin.nlink--;
    PutInode(tx, parent, pin);
    DropLinkLocked(tx, ino, orphans);
    PMEMFS_TRY(Commit(tx));
  }
  MaybeFree(ino);
  return Ok();
}

Result<std::vector<uint64_t>> FileSystem::Ancestry(uint64_t dir) {
  std::vector<uint64_t> chain;
  for (uint64_t cur = dir;;) {
    chain.push_back(cur);
    if (cur == format::kRootIno) return chain;
    if (chain.size() > sb_.inode_count) return Err(EUCLEAN, "directory parent chain has a cycle");
    NodeRef n = GetNode(cur);
    std::shared_lock lk(n->mu);  // one at a time: this walks up the tree
    PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(cur));
    if (!S_ISDIR(in.mode)) return Err(ENOTDIR, "not a directory");
    cur = in.parent;
  }
}

Status FileSystem::Rename(uint64_t parent, std::string_view name, uint64_t newparent, std::string_view newname,
                          uint32_t flags, const Ctx& ctx) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) return Err(EINVAL, "unsupported rename flags");
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)))
    return Err(EINVAL, "conflicting rename flags");
  PMEMFS_TRY(ValidName(newname));
  if (name.size() > format::kMaxNameLen) return Err(ENAMETOOLONG, "name longer than 255 bytes");
  const bool cross = parent != newparent;

  // Between two directories: ancestry held still by rename_mu_, learnt before any
  // directory is locked (walking up the tree while holding one would invert the order).
  std::unique_lock<std::mutex> rl(rename_mu_, std::defer_lock);
  std::vector<uint64_t> above_p, above_q;  // each directory and its ancestors
  if (cross) {
    rl.lock();
    PMEMFS_ASSIGN_OR_RETURN(above_p, Ancestry(parent));
    PMEMFS_ASSIGN_OR_RETURN(above_q, Ancestry(newparent));
  }
  auto in_chain = [](const std::vector<uint64_t>& chain, uint64_t ino) {
    return std::find(chain.begin(), chain.end(), ino) != chain.end();
  };
  NodeRef pn = GetNode(parent), qn = GetNode(newparent);
  Node* first = pn.get();
  Node* second = qn.get();
  if (cross && (in_chain(above_p, newparent) || (!in_chain(above_q, parent) && newparent < parent)))
    std::swap(first, second);
  ExclusiveLock l1(first->mu);
  ExclusiveLock l2;
  if (cross) l2 = ExclusiveLock(second->mu);

  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
  PMEMFS_ASSIGN_OR_RETURN(Inode qin, LoadInode(newparent));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * pd, Dir(*pn, pin));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * qd, Dir(*qn, qin));
  if (qin.nlink == 0) return Err(ENOENT, "target directory was removed");
  int64_t sslot = pd->Find(name);
  if (sslot < 0) return Err(ENOENT, "no such entry");
  const uint64_t sino = pd->At(sslot).ino;
  int64_t tslot = qd->Find(newname);
  const uint64_t tino = tslot >= 0 ? qd->At(tslot).ino : 0;
  // The VFS's "trap" checks, which also keep either directory from being locked twice.
  if (sino == parent || sino == newparent || (cross && in_chain(above_q, sino)))
    return Err(EINVAL, "directory moved into itself");
  if (tino && (tino == parent || tino == newparent || (cross && in_chain(above_p, tino))))
    return (flags & RENAME_EXCHANGE) ? Err(EINVAL, "directory moved into itself")
                                     : Err(ENOTEMPTY, "target is an ancestor of the source");

  NodeRef sn = GetNode(sino), tn = tino ? GetNode(tino) : nullptr;
  Node* a = sn.get();
  Node* b = tn.get();
  if (b && b->ino < a->ino) std::swap(a, b);
  ExclusiveLock la(a->mu);
  ExclusiveLock lb;
  if (b && b != a) lb = ExclusiveLock(b->mu);

  PMEMFS_ASSIGN_OR_RETURN(Inode sin, LoadInode(sino));
  bool sdir = S_ISDIR(sin.mode);
  format::Timespec now = Now();

  if (flags & RENAME_EXCHANGE) {
    if (tslot < 0) return Err(ENOENT, "exchange target missing");
    if (sino == tino) return Ok();
    PMEMFS_ASSIGN_OR_RETURN(Inode tin, LoadInode(tino));
    bool tdir = S_ISDIR(tin.mode);
    Tx tx(*region_);
    DropCaches(tx, *pn);
    DropCaches(tx, *qn);
    pd->StageRetarget(tx, sslot, tino, ModeType(tin.mode));
    qd->StageRetarget(tx, tslot, sino, ModeType(sin.mode));
    if (cross) {
      Inode p = TxInode(tx, parent), q = TxInode(tx, newparent);
      if (sdir) { sin.parent = newparent; q.nlink++; p.nlink--; }
      if (tdir) { tin.parent = parent; p.nlink++; q.nlink--; }
      p.mtime = p.ctime = now;
      PutInode(tx, parent, p);
      q.mtime = q.ctime = now;
      PutInode(tx, newparent, q);
    } else {
      Inode p = TxInode(tx, parent);
      p.mtime = p.ctime = now;
      PutInode(tx, parent, p);
    }
    sin.ctime = tin.ctime = now;
    PutInode(tx, sino, sin);
    PutInode(tx, tino, tin);
    return Commit(tx);
  }

  if (tslot >= 0) {
    if (flags & RENAME_NOREPLACE) return Err(EEXIST, "target exists");
    if (tino == sino) return Ok();  // two links to one inode: POSIX says do nothing
    PMEMFS_ASSIGN_OR_RETURN(Inode tin, LoadInode(tino));
    if (sdir && !S_ISDIR(tin.mode)) return Err(ENOTDIR, "directory over a non-directory");
    if (!sdir && S_ISDIR(tin.mode)) return Err(EISDIR, "non-directory over a directory");
    if (S_ISDIR(tin.mode)) {
      PMEMFS_ASSIGN_OR_RETURN(DirIndex * td, Dir(*tn, tin));
      if (td->size() > 0) return Err(ENOTEMPTY, "target directory not empty");
    }
    PMEMFS_TRY(CheckImmutableChangeLocked(tino, tin, "rename over"));
  }

  std::unique_lock orphans(orphan_mu_, std::defer_lock);
  Tx tx(*region_);
  DropCaches(tx, *pn);
  DropCaches(tx, *qn);
  if (tslot >= 0) {
    // Replace in place: the name never disappears, even for an instant of a crash.
    qd->StageRetarget(tx, tslot, sino, ModeType(sin.mode));
    DropLinkLocked(tx, tino, orphans);
    if (sdir) {
      Inode q = TxInode(tx, newparent);
      q.nlink--;  // the replaced directory's ".." link
      PutInode(tx, newparent, q);
    }
  } else {
    PMEMFS_TRY(AddEntryLocked(tx, *qn, newname, sino, sin.mode));
  }
  if (flags & RENAME_WHITEOUT) {
    // The source name stays, naming a whiteout (overlayfs's "deleted in the upper layer").
    PMEMFS_ASSIGN_OR_RETURN(uint64_t wino, ibitmap_.Allocate(tx));
    NodeRef wn = GetNode(wino);  // new: nobody can name it yet, so no lock order to keep
    ExclusiveLock wl(wn->mu);
    DropCaches(tx, *wn);
    Inode w{};
    w.mode = S_IFCHR;  // WHITEOUT_MODE, device 0/0 (WHITEOUT_DEV)
    w.uid = ctx.uid;
    w.gid = (pin.mode & S_ISGID) ? pin.gid : ctx.gid;  // inode_init_owner()
    w.nlink = 1;
    uint32_t g = TxInode(tx, wino).generation + 1;
    w.generation = g ? g : 1;
    w.atime = w.mtime = w.ctime = w.btime = now;
    PutNewInode(tx, wino, w);
    pd->StageRetarget(tx, sslot, wino, ModeType(w.mode));
  } else {
    pd->StageRemove(tx, sslot);
  }
  Inode p = TxInode(tx, parent);
  p.mtime = p.ctime = now;
  if (sdir && cross) p.nlink--;
  PutInode(tx, parent, p);
  if (cross) {
    Inode q = TxInode(tx, newparent);
    q.mtime = q.ctime = now;
    if (sdir) q.nlink++;
    PutInode(tx, newparent, q);
  }
  sin = TxInode(tx, sino);
  if (sdir) sin.parent = newparent;
  sin.ctime = now;
  PutInode(tx, sino, sin);
  return Commit(tx);  // a replaced inode is freed with the kernel's last reference
}

Status FileSystem::ReadDir(uint64_t ino, uint64_t cookie, bool plus, const DirEmit& emit) {
  NodeRef dn = GetNode(ino);
  uint64_t up = 0;
  Entry e;
  {
    std::shared_lock dl(dn->mu);
    PMEMFS_ASSIGN_OR_RETURN(Inode din, LoadInode(ino));
    PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(*dn, din));
    if (cookie == 0) {
      e = Entry{ino, din.generation, ToStat(ino, din)};
      if (!emit(".", e, 1)) return Ok();
      cookie = 1;
    }
    if (cookie > 1) {
      // An entry naming no usable inode (damage fsck repairs) is skipped, so that the rest
      // of the directory can still be listed; logged once per directory.
      auto skip = [&](const DirEntryView& v, const std::string& why) {
        if (LogDamageOnce(ino, 0))
          spdlog::error("directory {}: entry '{}' names inode {}: {}; skipped (run fsck.pmemfs)", ino, v.name, v.ino,
                        why);
      };
      DirEntryView v;
      for (uint64_t slot = cookie - 2; d->NextFrom(slot, &v); slot = v.slotno + 1) {
        if (v.ino == ino || v.ino == 0 || v.ino >= sb_.inode_count || !ibitmap_.InUse(v.ino)) {
          skip(v, v.ino == ino ? "its own directory" : "not an inode in use");
          continue;
        }
        if (plus) {
          NodeRef cn = GetNode(v.ino);
          std::shared_lock cl(cn->mu);
          auto in = LoadInode(v.ino);
          if (!in.ok()) {
            skip(v, in.error().Message());
            continue;
          }
          e = Entry{v.ino, in->generation, ToStat(v.ino, *in)};
          if (!emit(v.name, e, v.slotno + 3)) break;
          std::lock_guard tl(table_mu_);
          cn->nlookup++;
        } else {
          e = Entry{v.ino, 0, {}};
          e.attr.st_ino = v.ino;
          e.attr.st_mode = uint32_t{v.type} << 12;
          if (!emit(v.name, e, v.slotno + 3)) break;
        }
      }
      return Ok();
    }
    up = din.parent;
  }
  // "..", up the tree: only after letting go of the directory.
  e = Entry{up, 0, {}};
  {
    NodeRef un = GetNode(up);
    std::shared_lock ul(un->mu);
    if (auto pin = LoadInode(up); pin.ok()) e = Entry{up, pin->generation, ToStat(up, *pin)};
  }
  e.attr.st_ino = up;
  e.attr.st_mode = S_IFDIR;
  if (!emit("..", e, 2)) return Ok();
  return ReadDir(ino, 2, plus, emit);
}

Status FileSystem::Reattach(uint64_t ino) {
  NodeRef root = GetNode(format::kRootIno);
  uint64_t lf;
  {
    ExclusiveLock rl(root->mu);
    PMEMFS_TRY(Writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode rin, LoadInode(format::kRootIno));
    PMEMFS_ASSIGN_OR_RETURN(DirIndex * rd, Dir(*root, rin));
    if (int64_t slot = rd->Find("lost+found"); slot >= 0) {
      lf = rd->At(slot).ino;
    } else {
      PMEMFS_ASSIGN_OR_RETURN(Entry e, CreateLocked(Ctx{}, *root, "lost+found", S_IFDIR | 0700, 0, {}));
      lf = e.ino;
      Forget(lf, 1);  // no kernel holds it
    }
  }
  if (lf == ino || lf == format::kRootIno) return Err(EUCLEAN, "/lost+found names the inode to reattach");
  NodeRef ln = GetNode(lf);
  ExclusiveLock ll(ln->mu);
  NodeRef n = GetNode(ino);
  ExclusiveLock l(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode lin, LoadInode(lf));
  if (!S_ISDIR(lin.mode)) return Err(ENOTDIR, "/lost+found is not a directory");
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  std::string name = "#" + std::to_string(ino);
  Tx tx(*region_);
  PMEMFS_TRY(AddEntryLocked(tx, *ln, name, ino, in.mode));
  in = TxInode(tx, ino);
  if (S_ISDIR(in.mode)) {
    in.parent = lf;
    Inode l2 = TxInode(tx, lf);
    l2.nlink++;
    PutInode(tx, lf, l2);
  } else {
    in.nlink = 1;
  }
  in.ctime = Now();
  PutInode(tx, ino, in);
  return Commit(tx);
}

}  // namespace pmemfs::fs
