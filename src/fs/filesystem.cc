#include "fs/filesystem.h"

#include <spdlog/spdlog.h>

#include <linux/capability.h>

#include <algorithm>
#include <cstring>

#include "extent/records.h"
#include "extent/superblock.h"

namespace pmemfs::fs {

using extent::Tx;
using format::Inode;
using format::kBlockSize;

FileSystem::FileSystem(std::unique_ptr<pmem::Region> owned, pmem::Region& region, const format::Superblock& sb,
                       MountOptions opts)
    : owned_region_(std::move(owned)),
      region_(&region),
      sb_(sb),
      opts_(opts),
      read_only_(opts.read_only || region_->read_only()),
      journal_(*region_, sb_),
      alloc_(*region_, sb_),
      ibitmap_(*region_, sb_) {}

FileSystem::~FileSystem() {
  std::unique_lock lk(mu_);
  if (!read_only_ && Writable().ok()) (void)journal_.Checkpoint();
}

Result<std::unique_ptr<FileSystem>> FileSystem::Mount(std::unique_ptr<pmem::Region> region, MountOptions opts) {
  pmem::Region& r = *region;
  return MountImpl(std::move(region), r, opts);
}

Result<std::unique_ptr<FileSystem>> FileSystem::Mount(pmem::Region& region, MountOptions opts) {
  return MountImpl(nullptr, region, opts);
}

Result<std::unique_ptr<FileSystem>> FileSystem::MountImpl(std::unique_ptr<pmem::Region> owned, pmem::Region& region,
                                                          MountOptions opts) {
  PMEMFS_ASSIGN_OR_RETURN(extent::LoadedSuperblock loaded, extent::ReadSuperblock(region));
  if (loaded.from_backup) spdlog::warn("primary superblock damaged; mounted from the backup (run fsck.pmemfs)");
  if (loaded.sb.ro_compat & ~format::kRoCompatSupported) {
    spdlog::warn("unknown read-only-compatible features: mounting read-only");
    opts.read_only = true;
  }
  std::unique_ptr<FileSystem> fs(new FileSystem(std::move(owned), region, loaded.sb, opts));
  PMEMFS_TRY(fs->Recover());
  return fs;
}

Status FileSystem::Recover() {
  auto replayed = journal_.Recover();
  if (!replayed.ok()) return Error(replayed.error());
  const auto* st = region_->At<format::StateBlock>(sb_.state_off);
  if (st->magic != format::kStateMagic) return Err(EUCLEAN, "state block damaged");
  alloc_.Load();
  ibitmap_.Load();
  auto root = LoadInode(format::kRootIno);
  if (!root.ok() || !S_ISDIR(root->mode)) return Err(EUCLEAN, "root directory damaged");
  if (read_only_) return Ok();

  // Orphans: inodes unlinked while open when the last daemon stopped. Nothing references
  // them now; free each (their data, then the inode), bounded against a corrupt cycle.
  std::unique_lock lk(mu_);
  uint64_t freed = 0;
  while (uint64_t ino = region_->At<format::StateBlock>(sb_.state_off)->orphan_head) {
    if (++freed > sb_.inode_count) return Err(EUCLEAN, "orphan list has a cycle");
    auto in = LoadInode(ino);
    if (!in.ok()) return Error(in.error());
    if (in->nlink != 0) return Err(EUCLEAN, "linked inode on the orphan list");
    PMEMFS_TRY(TruncateBlocksLocked(ino, 0));
    PMEMFS_TRY(FreeInodeLocked(ino));
  }
  if (freed) spdlog::info("recovery: freed {} orphaned inodes", freed);
  return Ok();
}

std::string FileSystem::error_state() const {
  std::lock_guard lk(error_mu_);
  return error_;
}

void FileSystem::Stop(const std::string& reason) {
  std::lock_guard lk(error_mu_);
  if (!error_.empty()) return;
  error_ = reason;
  spdlog::error("{}; filesystem is now read-only", reason);
}

Status FileSystem::Writable() const {
  if (read_only_) return Err(EROFS, "read-only");
  std::lock_guard lk(error_mu_);
  if (!error_.empty()) return Err(EROFS, "filesystem stopped after an error");
  return Ok();
}

bool FileSystem::LogDamageOnce(uint64_t ino, int kind) const {
  std::lock_guard lk(error_mu_);
  // A damaged structure is met by every request that touches it: one line is enough.
  return damage_logged_.size() < 100000 && damage_logged_.insert(ino * 4 + kind).second;
}

void FileSystem::ReportDamage(uint64_t ino, const std::string& what) const {
  if (LogDamageOnce(ino, 2)) spdlog::error("inode {}: {} (run fsck.pmemfs)", ino, what);
}

Status FileSystem::Commit(Tx& tx) {
  Status s = journal_.Commit(tx);
  if (!s.ok() && s.code() != EFBIG) {
    std::lock_guard lk(error_mu_);
    if (error_.empty()) {
      error_ = s.error().Message();
      spdlog::error("journal commit failed ({}); filesystem is now read-only", error_);
    }
  }
  return s;
}

// ---- inodes ---------------------------------------------------------------------------------

Result<Inode> FileSystem::LoadInode(uint64_t ino) const {
  if (ino == 0 || ino >= sb_.inode_count) return Err(ESTALE, "inode number out of range");
  if (!ibitmap_.InUse(ino)) return Err(ESTALE, "inode not in use");
  Inode in;
  std::memcpy(&in, region_->base() + extent::InodeOff(sb_, ino), sizeof(in));
  if (!extent::InodeCrcOk(in)) {
    ReportDamage(ino, "checksum mismatch");
    return Err(EUCLEAN, "inode checksum mismatch");
  }
  uint32_t type = in.mode & S_IFMT;
  if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK && type != S_IFIFO && type != S_IFSOCK &&
      type != S_IFCHR && type != S_IFBLK)
    return Err(EUCLEAN, "inode has an invalid type");
  if (in.flags & ~format::kInodeKnownFlags) return Err(EUCLEAN, "inode has unknown flags");
  if (!extent::BlockRefOk(sb_, in.xattr_block) || !extent::BlockRefOk(sb_, in.extent_block)) {
    ReportDamage(ino, "block reference outside the data area");
    return Err(EUCLEAN, "inode refers outside the data area");
  }
  return in;
}

Inode FileSystem::TxInode(Tx& tx, uint64_t ino) const { return tx.Get<Inode>(extent::InodeOff(sb_, ino)); }

void FileSystem::PutInode(Tx& tx, uint64_t ino, Inode& in) {
  extent::SealInode(in);
  tx.Put(extent::InodeOff(sb_, ino), in);
}

static timespec ToTimespec(const format::Timespec& t) { return timespec{t.sec, static_cast<long>(t.nsec)}; }

struct stat FileSystem::ToStat(uint64_t ino, const Inode& in) const {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = in.mode;
  st.st_nlink = in.nlink;
  st.st_uid = in.uid;
  st.st_gid = in.gid;
  st.st_rdev = in.rdev;
  st.st_size = static_cast<off_t>(in.size);
  st.st_blocks = static_cast<blkcnt_t>(in.blocks * (kBlockSize / 512));
  st.st_blksize = kBlockSize;
  st.st_atim = ToTimespec(in.atime);
  st.st_mtim = ToTimespec(in.mtime);
  st.st_ctim = ToTimespec(in.ctime);
  return st;
}

FileSystem::InodeState& FileSystem::StateLocked(uint64_t ino) {
  auto& p = states_[ino];
  if (!p) p = std::make_unique<InodeState>();
  return *p;
}

Entry FileSystem::MakeEntryLocked(uint64_t ino, const Inode& in) {
  {
    std::lock_guard lk(cache_mu_);
    StateLocked(ino).nlookup++;
  }
  return Entry{ino, in.generation, ToStat(ino, in)};
}

Result<extent::ExtentMap*> FileSystem::Extents(uint64_t ino, const Inode& in) {
  std::lock_guard lk(cache_mu_);
  InodeState& s = StateLocked(ino);
  if (!s.extents) {
    auto m = extent::ExtentMap::Load(*region_, sb_, ino, in);
    if (!m.ok()) {
      ReportDamage(ino, "extent map: " + m.error().Message());
      return Error(m.error());
    }
    PMEMFS_TRY(ClaimBlocksLocked(ino, in, *m));
    s.extents.emplace(std::move(m).value());
  }
  return &*s.extents;
}

void FileSystem::ForEachOwnedRun(const Inode& in, const extent::ExtentMap& map,
                                 const std::function<void(uint64_t, uint64_t)>& fn) const {
  for (const auto& [lblk, entry] : map.entries()) fn(entry.e.pblk, entry.e.len);
  uint64_t hops = 0;  // the chain was validated when the map was loaded; bounded anyway
  for (uint64_t blk = in.extent_block; blk && extent::BlockRefOk(sb_, blk) && hops++ < sb_.total_blocks;
       blk = region_->At<format::ExtentBlock>(blk)->next)
    fn(blk / kBlockSize, 1);
  if (in.xattr_block) {
    const uint32_t n = region_->At<format::XattrBlockHeader>(in.xattr_block)->nblocks;  // 0: one block
    fn(in.xattr_block / kBlockSize, std::clamp<uint32_t>(n, 1, format::kMaxXattrBlocks));
  }
}

Status FileSystem::ClaimBlocksLocked(uint64_t ino, const Inode& in, const extent::ExtentMap& map) {
  // Whether `other` (an inode whose map is loaded) still owns a block of [start, end).
  auto still_owns = [&](uint64_t other, uint64_t start, uint64_t end) {
    auto it = states_.find(other);
    if (it == states_.end() || !it->second->extents) return false;
    bool owns = false;
    const Inode* oin = region_->At<Inode>(extent::InodeOff(sb_, other));
    ForEachOwnedRun(*oin, *it->second->extents, [&](uint64_t s, uint64_t n) { owns |= s < end && start < s + n; });
    return owns;
  };
  Status bad;
  ForEachOwnedRun(in, map, [&](uint64_t start, uint64_t len) {
    if (!bad.ok()) return;
    if (!alloc_.InUse(extent::Run{start, len})) {
      if (LogDamageOnce(ino, 1))
        spdlog::error("inode {}: extent map names region blocks {}..{}, marked free (run fsck.pmemfs)", ino, start,
                      start + len - 1);
      bad = Err(EUCLEAN, "extent map names free blocks");
      return;
    }
    auto it = owned_.upper_bound(start);
    if (it != owned_.begin() && std::prev(it)->second.first > start) --it;
    while (it != owned_.end() && it->first < start + len) {
      auto [end, other] = it->second;
      if (other == ino || !still_owns(other, it->first, end)) {
        it = owned_.erase(it);  // stale: that inode no longer maps it
        continue;
      }
      // Only the blocks this map names count: `other` may map just part of the run it was
      // recorded with (it shrank, or its number was freed and reused by a new file that
      // took some of the same blocks).
      if (!still_owns(other, std::max(it->first, start), std::min(end, start + len))) {
        ++it;
        continue;
      }
      if (LogDamageOnce(ino, 1))
        spdlog::error("inode {}: extent map names region blocks {}..{}, owned by inode {} (run fsck.pmemfs)", ino,
                      start, start + len - 1, other);
      bad = Err(EUCLEAN, "extent map overlaps another inode's blocks");
      return;
    }
  });
  if (!bad.ok()) return bad;
  ForEachOwnedRun(in, map, [&](uint64_t start, uint64_t len) { owned_[start] = {start + len, ino}; });
  if (owned_.size() > owned_rebuild_at_) {
    // Entries go stale as maps change: start again from the maps loaded now.
    owned_.clear();
    for (const auto& [other, st] : states_) {
      if (!st->extents) continue;
      const Inode* oin = region_->At<Inode>(extent::InodeOff(sb_, other));
      ForEachOwnedRun(*oin, *st->extents, [&](uint64_t s, uint64_t n) { owned_[s] = {s + n, other}; });
    }
    ForEachOwnedRun(in, map, [&](uint64_t s, uint64_t n) { owned_[s] = {s + n, ino}; });
    owned_rebuild_at_ = std::max<size_t>(4096, owned_.size() * 2);
  }
  return Ok();
}

Result<DirIndex*> FileSystem::Dir(uint64_t ino, const Inode& in) {
  if (!S_ISDIR(in.mode)) return Err(ENOTDIR, "not a directory");
  {
    std::lock_guard lk(cache_mu_);
    InodeState& s = StateLocked(ino);
    if (s.dir) return s.dir.get();
  }
  PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(ino, in));
  std::vector<uint64_t> blocks;
  uint64_t next = 0;
  for (const auto& [lblk, entry] : map->entries()) {
    if (lblk != next || (entry.e.flags & format::kExtentUnwritten)) return Err(EUCLEAN, "directory has a hole");
    for (uint32_t i = 0; i < entry.e.len; ++i) blocks.push_back(format::BlockOff(entry.e.pblk + i));
    next = lblk + entry.e.len;
  }
  auto d = DirIndex::Load(*region_, std::move(blocks));
  if (!d.ok()) {
    ReportDamage(ino, "directory: " + d.error().Message());
    return Error(d.error());
  }
  std::lock_guard lk(cache_mu_);
  InodeState& s = StateLocked(ino);
  if (!s.dir) s.dir = std::make_unique<DirIndex>(std::move(d).value());
  return s.dir.get();
}

void FileSystem::DropCaches(Tx& tx, uint64_t ino) {
  tx.OnAbort([this, ino] {
    std::lock_guard lk(cache_mu_);
    auto it = states_.find(ino);
    if (it == states_.end()) return;
    it->second->extents.reset();
    it->second->dir.reset();
  });
}

// ---- attributes -------------------------------------------------------------------------------

Result<struct stat> FileSystem::GetAttr(uint64_t ino) {
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  return ToStat(ino, in);
}

static format::Timespec Now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return format::Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0};
}
static format::Timespec FromTimespec(const timespec& t) {
  return format::Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0};
}

Result<struct stat> FileSystem::SetAttr(const Ctx& ctx, uint64_t ino, const SetAttrIn& a) {
  // The kernel checked ownership (default_permissions).
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  format::Timespec now = Now();
  auto apply = [&](Tx& tx, Inode& n) -> Status {
    if (a.mask & kSetMode) n.mode = (n.mode & S_IFMT) | (a.mode & 07777);
    if (a.mask & kSetUid) n.uid = a.uid;
    if (a.mask & kSetGid) n.gid = a.gid;
    if (a.mask & kSetAtimeNow) n.atime = now;
    else if (a.mask & kSetAtime) n.atime = FromTimespec(a.atime);
    if (a.mask & kSetMtimeNow) n.mtime = now;
    else if (a.mask & kSetMtime) n.mtime = FromTimespec(a.mtime);
    if (a.mask & kSetSize) n.mtime = now;
    n.ctime = (a.mask & kSetCtime) ? FromTimespec(a.ctime) : now;
    if (a.mask & (kSetUid | kSetGid)) PMEMFS_TRY(KillPrivsLocked(ctx, tx, ino, n, /*chown=*/true));
    if (a.mask & kSetSize) PMEMFS_TRY(KillPrivsLocked(ctx, tx, ino, n, /*chown=*/false));
    return Ok();
  };
  if (a.mask & kSetSize) {
    if (S_ISDIR(in.mode)) return Err(EISDIR, "truncate of a directory");
    if (!S_ISREG(in.mode)) return Err(EINVAL, "truncate of a special file");
    if (a.size > kMaxFileSize) return Err(EFBIG, "size beyond the maximum file size");
  }
  if ((a.mask & kSetSize) && a.size != in.size) {
    PMEMFS_TRY(CheckImmutableChangeLocked(ino, in, "truncate"));
    // One transaction for the size and every other attribute of this setattr.
    PMEMFS_TRY(SetSizeLocked(ino, a.size, apply));
    PMEMFS_ASSIGN_OR_RETURN(in, LoadInode(ino));
    return ToStat(ino, in);
  }
  Tx tx(*region_);
  PMEMFS_TRY(apply(tx, in));
  PutInode(tx, ino, in);
  PMEMFS_TRY(Commit(tx));
  return ToStat(ino, in);
}

Status FileSystem::KillPrivsLocked(const Ctx& ctx, Tx& tx, uint64_t ino, Inode& in, bool chown) {
  if (S_ISDIR(in.mode) || (!chown && !S_ISREG(in.mode))) return Ok();
  bool changed = false;
  if (in.mode & (S_ISUID | S_ISGID)) {
    // setattr_should_drop_sgid(): set-group-ID without group execute marks mandatory
    // locking, and goes only when the caller could not have set it.
    const bool sgid = (in.mode & S_ISGID) &&
                      ((in.mode & S_IXGRP) || (!ctx.InGroup(in.gid) && !ctx.Has(CAP_FSETID)));
    if ((in.mode & S_ISUID) || sgid) {
      if (chown || !ctx.Has(CAP_FSETID)) {
        in.mode &= ~(S_ISUID | (sgid ? S_ISGID : 0u));
        changed = true;
      }
    }
  }
  if (in.xattr_block && S_ISREG(in.mode)) {
    PMEMFS_ASSIGN_OR_RETURN(bool dropped, StageDropXattrLocked(tx, ino, in, "security.capability"));
    changed |= dropped;
  }
  if (changed && attr_changed_) tx.OnCommit([this, ino] { attr_changed_(ino); });
  return Ok();
}

StatFs FileSystem::Statfs() {
  uint64_t meta = sb_.data_off / kBlockSize + 1;
  return StatFs{kBlockSize, sb_.total_blocks - meta, alloc_.free_blocks(), sb_.inode_count - 1,
                ibitmap_.free_inodes(), format::kMaxNameLen};
}

// ---- lifetime: lookups, opens, orphans ---------------------------------------------------------

Status FileSystem::Open(uint64_t ino, int flags) {
  (void)flags;
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  (void)in;
  std::lock_guard cl(cache_mu_);
  StateLocked(ino).open_count++;
  return Ok();
}

void FileSystem::Release(uint64_t ino) {
  std::unique_lock lk(mu_);
  {
    std::lock_guard cl(cache_mu_);
    auto it = states_.find(ino);
    if (it == states_.end() || it->second->open_count == 0) return;
    it->second->open_count--;
  }
  if (Status s = MaybeFreeLocked(ino); !s.ok()) spdlog::error("release of inode {}: {}", ino, s.error().Message());
}

void FileSystem::Forget(uint64_t ino, uint64_t nlookup) {
  std::unique_lock lk(mu_);
  {
    std::lock_guard cl(cache_mu_);
    auto it = states_.find(ino);
    if (it == states_.end()) return;
    InodeState& s = *it->second;
    s.nlookup = nlookup > s.nlookup ? 0 : s.nlookup - nlookup;
    if (s.nlookup == 0 && s.open_count == 0) {
      // Keep the caches of linked inodes only while the kernel knows them.
      auto in = LoadInode(ino);
      if (!in.ok() || in->nlink > 0) {
        states_.erase(it);
        return;
      }
    }
  }
  if (Status s = MaybeFreeLocked(ino); !s.ok()) spdlog::error("forget of inode {}: {}", ino, s.error().Message());
}

Status FileSystem::MaybeFreeLocked(uint64_t ino) {
  auto in = LoadInode(ino);
  if (!in.ok() || in->nlink > 0) return Ok();
  uint64_t nlookup, open;
  {
    std::lock_guard cl(cache_mu_);
    auto it = states_.find(ino);
    nlookup = it == states_.end() ? 0 : it->second->nlookup;
    open = it == states_.end() ? 0 : it->second->open_count;
  }
  // While the kernel holds a reference it can still open the inode (an open that looked the
  // name up before a rename replaced it) or read a symlink's target, and must find the
  // contents intact: the space comes back only with the last reference, open or looked up.
  // The kernel drops an unlinked inode's reference as soon as its last user goes.
  if (open > 0 || nlookup > 0 || Writable().code()) return Ok();
  if (in->size > 0 || in->blocks > 0) PMEMFS_TRY(TruncateBlocksLocked(ino, 0));
  return FreeInodeLocked(ino);
}

void FileSystem::OrphanAddLocked(Tx& tx, uint64_t ino, Inode& in) {
  auto st = tx.Get<format::StateBlock>(sb_.state_off);
  in.flags |= format::kInodeOrphan;
  in.prev_orphan = 0;
  in.next_orphan = st.orphan_head;
  if (st.orphan_head) {
    Inode head = TxInode(tx, st.orphan_head);
    head.prev_orphan = ino;
    PutInode(tx, st.orphan_head, head);
  }
  st.orphan_head = ino;
  tx.Put(sb_.state_off, st);
}

void FileSystem::OrphanRemoveLocked(Tx& tx, uint64_t ino, Inode& in) {
  if (!(in.flags & format::kInodeOrphan)) return;
  if (in.prev_orphan) {
    Inode prev = TxInode(tx, in.prev_orphan);
    prev.next_orphan = in.next_orphan;
    PutInode(tx, in.prev_orphan, prev);
  } else {
    auto st = tx.Get<format::StateBlock>(sb_.state_off);
    if (st.orphan_head == ino) {
      st.orphan_head = in.next_orphan;
      tx.Put(sb_.state_off, st);
    }
  }
  if (in.next_orphan) {
    Inode next = TxInode(tx, in.next_orphan);
    next.prev_orphan = in.prev_orphan;
    PutInode(tx, in.next_orphan, next);
  }
  in.flags &= ~format::kInodeOrphan;
  in.next_orphan = in.prev_orphan = 0;
}

Status FileSystem::FreeInodeLocked(uint64_t ino) {
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(ino, in));
  if (!map->entries().empty()) return Err(EUCLEAN, "freeing an inode that still maps blocks");
  Tx tx(*region_);
  DropCaches(tx, ino);
  OrphanRemoveLocked(tx, ino, in);
  map->FreeChain(tx, in, alloc_);
  PMEMFS_TRY(StageFreeXattrsLocked(tx, ino, in));
  uint32_t generation = in.generation;
  in = Inode{};
  in.generation = generation;  // the next user of the slot bumps it
  PutInode(tx, ino, in);
  ibitmap_.StageFree(tx, ino);
  PMEMFS_TRY(Commit(tx));
  std::lock_guard cl(cache_mu_);
  states_.erase(ino);
  return Ok();
}

Status FileSystem::Fsync(uint64_t ino) {  // NOLINT
  // Data and metadata are durable before every reply; nothing is pending.
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  (void)in;
  return Ok();
}

}  // namespace pmemfs::fs
