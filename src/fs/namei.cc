// Namespace operations: lookup, create, link, unlink, rename, readdir.
#include <linux/fs.h>
#include <spdlog/spdlog.h>

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

}  // namespace

Result<Entry> FileSystem::Lookup(uint64_t parent, std::string_view name) {
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
  if (!S_ISDIR(pin.mode)) return Err(ENOTDIR, "lookup in a non-directory");
  uint64_t ino;
  if (name == ".") {
    ino = parent;
  } else if (name == "..") {
    ino = pin.parent;
  } else {
    if (name.size() > format::kMaxNameLen) return Err(ENAMETOOLONG, "name longer than 255 bytes");
    PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(parent, pin));
    int64_t slot = d->Find(name);
    if (slot < 0) return Err(ENOENT, "no such entry");
    ino = d->At(slot).ino;
  }
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  return MakeEntryLocked(ino, in);
}

Status FileSystem::AddEntryLocked(Tx& tx, uint64_t dir, Inode& unused, std::string_view name, uint64_t ino,
                                  uint32_t mode) {
  (void)unused;
  Inode din = TxInode(tx, dir);
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(dir, din));
  DropCaches(tx, dir);
  int64_t slot = d->FindFree(static_cast<uint32_t>(name.size()));
  if (slot < 0) {
    // Grow the directory by one block, next to its last one when possible.
    PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(dir, din));
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
  PutInode(tx, dir, din);
  return Ok();
}

Result<Entry> FileSystem::CreateLocked(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode,
                                       uint64_t rdev, std::string_view target) {
  PMEMFS_TRY(Writable());
  PMEMFS_TRY(ValidName(name));
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
  if (!S_ISDIR(pin.mode)) return Err(ENOTDIR, "parent is not a directory");
  if (pin.nlink == 0) return Err(ENOENT, "parent directory was removed");
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(parent, pin));
  if (d->Find(name) >= 0) return Err(EEXIST, "name exists");
  bool is_dir = S_ISDIR(mode);
  if (is_dir && pin.nlink >= kMaxLinks) return Err(EMLINK, "too many subdirectories");
  if (target.size() > kMaxSymlink) return Err(ENAMETOOLONG, "symlink target too long");

  Tx tx(*region_);
  PMEMFS_ASSIGN_OR_RETURN(uint64_t ino, ibitmap_.Allocate(tx));
  DropCaches(tx, ino);
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
  PutInode(tx, ino, in);
  Inode unused;
  PMEMFS_TRY(AddEntryLocked(tx, parent, unused, name, ino, mode));
  if (is_dir) {
    Inode p = TxInode(tx, parent);
    p.nlink++;
    PutInode(tx, parent, p);
  }
  PMEMFS_TRY(Commit(tx));
  return MakeEntryLocked(ino, in);
}

Result<Entry> FileSystem::Mknod(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode,
                                uint64_t rdev) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  else if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
    return Err(EINVAL, "mknod of an unsupported type");
  std::unique_lock lk(mu_);
  return CreateLocked(ctx, parent, name, mode, rdev, {});
}

Result<Entry> FileSystem::Mkdir(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode) {
  std::unique_lock lk(mu_);
  return CreateLocked(ctx, parent, name, S_IFDIR | (mode & 07777), 0, {});
}

Result<Entry> FileSystem::Symlink(const Ctx& ctx, uint64_t parent, std::string_view name,
                                  std::string_view target) {
  if (target.empty()) return Err(ENOENT, "empty symlink target");
  std::unique_lock lk(mu_);
  return CreateLocked(ctx, parent, name, S_IFLNK | 0777, 0, target);
}

Result<std::string> FileSystem::Readlink(uint64_t ino) {
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (!S_ISLNK(in.mode)) return Err(EINVAL, "not a symlink");
  PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(ino, in));
  const format::Extent* e = map->Next(0);
  if (!e || e->lblk != 0 || in.size == 0 || in.size > kMaxSymlink) return Err(EUCLEAN, "symlink has no target");
  return std::string(region_->At<const char>(format::BlockOff(e->pblk)), in.size);
}

Result<Entry> FileSystem::Link(uint64_t ino, uint64_t newparent, std::string_view newname) {
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_TRY(ValidName(newname));
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (S_ISDIR(in.mode)) return Err(EPERM, "hard link to a directory");
  if (in.nlink == 0) return Err(ENOENT, "link to a removed file");
  if (in.nlink >= kMaxLinks) return Err(EMLINK, "too many links");
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(newparent));
  if (!S_ISDIR(pin.mode)) return Err(ENOTDIR, "parent is not a directory");
  if (pin.nlink == 0) return Err(ENOENT, "parent directory was removed");
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(newparent, pin));
  if (d->Find(newname) >= 0) return Err(EEXIST, "name exists");
  Tx tx(*region_);
  Inode unused;
  PMEMFS_TRY(AddEntryLocked(tx, newparent, unused, newname, ino, in.mode));
  in = TxInode(tx, ino);
  in.nlink++;
  in.ctime = Now();
  PutInode(tx, ino, in);
  PMEMFS_TRY(Commit(tx));
  return MakeEntryLocked(ino, in);
}

void FileSystem::DropLinkLocked(Tx& tx, uint64_t ino, Inode& unused) {
  (void)unused;
  Inode in = TxInode(tx, ino);
  in.nlink = S_ISDIR(in.mode) ? 0 : in.nlink - 1;
  in.ctime = Now();
  if (in.nlink == 0) OrphanAddLocked(tx, ino, in);
  PutInode(tx, ino, in);
}

Status FileSystem::Unlink(uint64_t parent, std::string_view name) {
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(parent, pin));
  int64_t slot = d->Find(name);
  if (slot < 0) return Err(ENOENT, "no such entry");
  uint64_t ino = d->At(slot).ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (S_ISDIR(in.mode)) return Err(EISDIR, "unlink of a directory");
  PMEMFS_TRY(CheckImmutableChangeLocked(ino, in, "unlink"));
  Tx tx(*region_);
  DropCaches(tx, parent);
  d->StageRemove(tx, slot);
  pin.mtime = pin.ctime = Now();
  PutInode(tx, parent, pin);
  DropLinkLocked(tx, ino, in);
  PMEMFS_TRY(Commit(tx));
  return MaybeFreeLocked(ino);
}

Status FileSystem::Rmdir(uint64_t parent, std::string_view name) {
  if (name == ".") return Err(EINVAL, "rmdir of .");
  if (name == "..") return Err(ENOTEMPTY, "rmdir of ..");
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(parent, pin));
  int64_t slot = d->Find(name);
  if (slot < 0) return Err(ENOENT, "no such entry");
  uint64_t ino = d->At(slot).ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (!S_ISDIR(in.mode)) return Err(ENOTDIR, "rmdir of a non-directory");
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * child, Dir(ino, in));
  if (child->size() > 0) return Err(ENOTEMPTY, "directory not empty");
  Tx tx(*region_);
  DropCaches(tx, parent);
  d->StageRemove(tx, slot);
  pin.mtime = pin.ctime = Now();
  pin.nlink--;
  PutInode(tx, parent, pin);
  DropLinkLocked(tx, ino, in);
  PMEMFS_TRY(Commit(tx));
  return MaybeFreeLocked(ino);
}

Result<bool> FileSystem::IsAncestorLocked(uint64_t ancestor, uint64_t dir) {
  for (uint64_t cur = dir, steps = 0;; ++steps) {
    if (cur == ancestor) return true;
    if (cur == format::kRootIno) return false;
    if (steps > sb_.inode_count) return Err(EUCLEAN, "directory parent chain has a cycle");
    PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(cur));
    cur = in.parent;
  }
}

Status FileSystem::Rename(uint64_t parent, std::string_view name, uint64_t newparent, std::string_view newname,
                          uint32_t flags, const Ctx& ctx) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) return Err(EINVAL, "unsupported rename flags");
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)))
    return Err(EINVAL, "conflicting rename flags");
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_TRY(ValidName(newname));
  PMEMFS_ASSIGN_OR_RETURN(Inode pin, LoadInode(parent));
  PMEMFS_ASSIGN_OR_RETURN(Inode qin, LoadInode(newparent));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * pd, Dir(parent, pin));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * qd, Dir(newparent, qin));
  if (qin.nlink == 0) return Err(ENOENT, "target directory was removed");
  int64_t sslot = pd->Find(name);
  if (sslot < 0) return Err(ENOENT, "no such entry");
  uint64_t sino = pd->At(sslot).ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode sin, LoadInode(sino));
  int64_t tslot = qd->Find(newname);
  uint64_t tino = tslot >= 0 ? qd->At(tslot).ino : 0;
  bool sdir = S_ISDIR(sin.mode);
  format::Timespec now = Now();

  if (flags & RENAME_EXCHANGE) {
    if (tslot < 0) return Err(ENOENT, "exchange target missing");
    if (sino == tino) return Ok();
    PMEMFS_ASSIGN_OR_RETURN(Inode tin, LoadInode(tino));
    bool tdir = S_ISDIR(tin.mode);
    if (parent != newparent) {
      if (sdir) {
        PMEMFS_ASSIGN_OR_RETURN(bool loop, IsAncestorLocked(sino, newparent));
        if (loop) return Err(EINVAL, "directory moved into itself");
      }
      if (tdir) {
        PMEMFS_ASSIGN_OR_RETURN(bool loop, IsAncestorLocked(tino, parent));
        if (loop) return Err(EINVAL, "directory moved into itself");
      }
    }
    Tx tx(*region_);
    DropCaches(tx, parent);
    DropCaches(tx, newparent);
    pd->StageRetarget(tx, sslot, tino, ModeType(tin.mode));
    qd->StageRetarget(tx, tslot, sino, ModeType(sin.mode));
    if (parent != newparent) {
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
      PMEMFS_ASSIGN_OR_RETURN(DirIndex * td, Dir(tino, tin));
      if (td->size() > 0) return Err(ENOTEMPTY, "target directory not empty");
    }
    PMEMFS_TRY(CheckImmutableChangeLocked(tino, tin, "rename over"));
  }
  if (sdir && parent != newparent) {
    PMEMFS_ASSIGN_OR_RETURN(bool loop, IsAncestorLocked(sino, newparent));
    if (loop) return Err(EINVAL, "directory moved into itself");
  }

  Tx tx(*region_);
  DropCaches(tx, parent);
  DropCaches(tx, newparent);
  if (tslot >= 0) {
    // Replace in place: the name never disappears, even for an instant of a crash.
    qd->StageRetarget(tx, tslot, sino, ModeType(sin.mode));
    Inode unused;
    DropLinkLocked(tx, tino, unused);
    if (sdir) {
      Inode q = TxInode(tx, newparent);
      q.nlink--;  // the replaced directory's ".." link
      PutInode(tx, newparent, q);
    }
  } else {
    Inode unused;
    PMEMFS_TRY(AddEntryLocked(tx, newparent, unused, newname, sino, sin.mode));
  }
  if (flags & RENAME_WHITEOUT) {
    // The source name stays, naming a whiteout (overlayfs's "deleted in the upper layer").
    PMEMFS_ASSIGN_OR_RETURN(uint64_t wino, ibitmap_.Allocate(tx));
    DropCaches(tx, wino);
    Inode w{};
    w.mode = S_IFCHR;  // WHITEOUT_MODE, device 0/0 (WHITEOUT_DEV)
    w.uid = ctx.uid;
    w.gid = (pin.mode & S_ISGID) ? pin.gid : ctx.gid;  // inode_init_owner()
    w.nlink = 1;
    uint32_t g = TxInode(tx, wino).generation + 1;
    w.generation = g ? g : 1;
    w.atime = w.mtime = w.ctime = w.btime = now;
    PutInode(tx, wino, w);
    pd->StageRetarget(tx, sslot, wino, ModeType(w.mode));
  } else {
    pd->StageRemove(tx, sslot);
  }
  Inode p = TxInode(tx, parent);
  p.mtime = p.ctime = now;
  if (sdir && parent != newparent) p.nlink--;
  PutInode(tx, parent, p);
  if (parent != newparent) {
    Inode q = TxInode(tx, newparent);
    q.mtime = q.ctime = now;
    if (sdir) q.nlink++;
    PutInode(tx, newparent, q);
  }
  sin = TxInode(tx, sino);
  if (sdir) sin.parent = newparent;
  sin.ctime = now;
  PutInode(tx, sino, sin);
  PMEMFS_TRY(Commit(tx));
  if (tino) return MaybeFreeLocked(tino);
  return Ok();
}

Status FileSystem::ReadDir(uint64_t ino, uint64_t cookie, bool plus, const DirEmit& emit) {
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode din, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * d, Dir(ino, din));
  Entry e;
  if (cookie == 0) {
    e = Entry{ino, din.generation, ToStat(ino, din)};
    if (!emit(".", e, 1)) return Ok();
    cookie = 1;
  }
  if (cookie == 1) {
    e = Entry{din.parent, 0, {}};
    if (auto pin = LoadInode(din.parent); pin.ok()) e = Entry{din.parent, pin->generation, ToStat(din.parent, *pin)};
    e.attr.st_ino = din.parent;
    e.attr.st_mode = S_IFDIR;
    if (!emit("..", e, 2)) return Ok();
    cookie = 2;
  }
  DirEntryView v;
  for (uint64_t slot = cookie - 2; d->NextFrom(slot, &v); slot = v.slotno + 1) {
    // An entry naming no usable inode (damage fsck repairs) is skipped, so that the rest of
    // the directory can still be listed; logged once per directory.
    Result<Inode> in = plus || v.ino == 0 || v.ino >= sb_.inode_count || !ibitmap_.InUse(v.ino)
                           ? LoadInode(v.ino)
                           : Result<Inode>(Inode{});
    if (!in.ok()) {
      if (LogDamageOnce(ino, 0))
        spdlog::error("directory {}: entry '{}' names inode {}: {}; skipped (run fsck.pmemfs)", ino, v.name, v.ino,
                      in.error().Message());
      continue;
    }
    if (plus) {
      e = Entry{v.ino, in->generation, ToStat(v.ino, *in)};
    } else {
      e = Entry{v.ino, 0, {}};
      e.attr.st_ino = v.ino;
      e.attr.st_mode = uint32_t{v.type} << 12;
    }
    if (!emit(v.name, e, v.slotno + 3)) break;
    if (plus) {
      std::lock_guard cl(cache_mu_);
      StateLocked(v.ino).nlookup++;
    }
  }
  return Ok();
}

}  // namespace pmemfs::fs

namespace pmemfs::fs {

Status FileSystem::Reattach(uint64_t ino) {
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode root, LoadInode(format::kRootIno));
  PMEMFS_ASSIGN_OR_RETURN(DirIndex * rd, Dir(format::kRootIno, root));
  uint64_t lf;
  if (int64_t slot = rd->Find("lost+found"); slot >= 0) {
    lf = rd->At(slot).ino;
  } else {
    PMEMFS_ASSIGN_OR_RETURN(Entry e, CreateLocked(Ctx{}, format::kRootIno, "lost+found", S_IFDIR | 0700, 0, {}));
    lf = e.ino;
    std::lock_guard cl(cache_mu_);
    StateLocked(lf).nlookup = 0;  // no kernel holds it
  }
  PMEMFS_ASSIGN_OR_RETURN(Inode lin, LoadInode(lf));
  if (!S_ISDIR(lin.mode)) return Err(ENOTDIR, "/lost+found is not a directory");
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  std::string name = "#" + std::to_string(ino);
  Tx tx(*region_);
  Inode unused;
  PMEMFS_TRY(AddEntryLocked(tx, lf, unused, name, ino, in.mode));
  in = TxInode(tx, ino);
  if (S_ISDIR(in.mode)) {
    in.parent = lf;
    Inode l = TxInode(tx, lf);
    l.nlink++;
    PutInode(tx, lf, l);
  } else {
    in.nlink = 1;
  }
  in.ctime = Now();
  PutInode(tx, ino, in);
  return Commit(tx);
}

}  // namespace pmemfs::fs
