// SPDX-License-Identifier: BSD-3-Clause
#include "fs/filesystem.h"

#include <spdlog/spdlog.h>

#include <linux/capability.h>

#include <algorithm>
#include <chrono>
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
  stop_prefault_ = true;
  if (prefault_.joinable()) prefault_.join();
  // No request is in flight (the FUSE loop ended, or the caller is done with it).
  if (!read_only_ && Writable().ok()) (void)journal_.Checkpoint();
}

void FileSystem::StartPrefault() {
  prefault_ = std::thread([this] {
    const auto start = std::chrono::steady_clock::now();
    constexpr uint64_t kChunk = 2ull << 20;  // a stop is noticed within one chunk
    uint64_t bytes = 0;
    // The fixed metadata (block 0 on) is in use too, so it comes first.
    for (const extent::Run& r : alloc_.TakenRuns()) {
      for (uint64_t off = format::BlockOff(r.start), end = format::BlockOff(r.end()); off < end; off += kChunk) {
        if (stop_prefault_) return;
        const uint64_t n = std::min(kChunk, end - off);
        if (Status s = region_->Prefault(off, n); !s.ok()) {
          spdlog::debug("prefault stopped at region offset {}: {}", off, s.error().Message());
          return;
        }
        bytes += n;
      }
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    spdlog::info("prefaulted {} MiB of the region mapping (metadata and blocks in use) in {} ms", bytes >> 20,
                 ms.count());
  });
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
  {
    NodeRef root_node = GetNode(format::kRootIno);
    std::shared_lock lk(root_node->mu);
    auto root = LoadInode(format::kRootIno);
    if (!root.ok() || !S_ISDIR(root->mode)) return Err(EUCLEAN, "root directory damaged");
  }
  if (read_only_) return Ok();

  // Orphans: inodes unlinked while open when the last daemon stopped. Nothing references
  // them now; free each (their data, then the inode), bounded against a corrupt cycle.
  uint64_t freed = 0;
  while (uint64_t ino = region_->At<format::StateBlock>(sb_.state_off)->orphan_head) {
    if (++freed > sb_.inode_count) return Err(EUCLEAN, "orphan list has a cycle");
    NodeRef n = GetNode(ino);
    std::unique_lock lk(n->mu);
    auto in = LoadInode(ino);
    if (!in.ok()) return Error(in.error());
    if (in->nlink != 0) return Err(EUCLEAN, "linked inode on the orphan list");
    PMEMFS_TRY(TruncateBlocksLocked(*n, 0));
    PMEMFS_TRY(FreeInodeLocked(*n));
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

// ---- nodes ------------------------------------------------------------------------------------

FileSystem::NodeRef FileSystem::GetNode(uint64_t ino) {
  std::lock_guard lk(table_mu_);
  NodeRef& n = nodes_[ino];
  if (!n) n = std::make_shared<Node>(ino);
  return n;
}

void FileSystem::DropNodeIfUnusedLocked(uint64_t ino) {
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  const Node& n = *it->second;
  // use_count 1: no operation holds it (references are taken only under table_mu_), so
  // no later GetNode can meet a second Node for the same inode while this one is in use.
  if (n.nlookup == 0 && n.open_count == 0 && n.leases == 0 && it->second.use_count() == 1 &&
      ino != format::kRootIno)
    nodes_.erase(it);
}

// ---- inodes ---------------------------------------------------------------------------------

Result<Inode> FileSystem::LoadInode(uint64_t ino) const {
  if (ino == 0 || ino >= sb_.inode_count) return Err(ESTALE, "inode number out of range");
  if (!ibitmap_.InUse(ino)) return Err(ESTALE, "inode not in use");
  // All but the orphan links, which belong to the orphan list (OrphanLink reads them under
  // its lock): a neighbour's transaction may be writing them right now.
  Inode in{};
  const uint8_t* src = region_->base() + extent::InodeOff(sb_, ino);
  auto* dst = reinterpret_cast<uint8_t*>(&in);
  constexpr size_t kNext = offsetof(Inode, next_orphan), kPrev = offsetof(Inode, prev_orphan);
  std::memcpy(dst, src, kNext);
  std::memcpy(dst + kNext + 8, src + kNext + 8, kPrev - kNext - 8);
  std::memcpy(dst + kPrev + 8, src + kPrev + 8, sizeof(Inode) - kPrev - 8);
  if (!extent::InodeCrcOk(in)) {
    // A format 1.1/1.2 inode's checksum covers its links too.
    std::memcpy(&in.next_orphan, src + kNext, 8);
    std::memcpy(&in.prev_orphan, src + kPrev, 8);
    if (!extent::InodeCrcOk(in)) {
      ReportDamage(ino, "checksum mismatch");
      return Err(EUCLEAN, "inode checksum mismatch");
    }
    in.next_orphan = in.prev_orphan = 0;
  }
  extent::FoldDataTime(in);
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

Inode FileSystem::TxInode(Tx& tx, uint64_t ino) const {
  // As LoadInode, all but the orphan links.
  Inode in{};
  const uint64_t off = extent::InodeOff(sb_, ino);
  auto* dst = reinterpret_cast<uint8_t*>(&in);
  constexpr uint32_t kNext = offsetof(Inode, next_orphan), kPrev = offsetof(Inode, prev_orphan);
  tx.Read(off, dst, kNext);
  tx.Read(off + kNext + 8, dst + kNext + 8, kPrev - kNext - 8);
  tx.Read(off + kPrev + 8, dst + kPrev + 8, sizeof(Inode) - kPrev - 8);
  extent::FoldDataTime(in);
  return in;
}

void FileSystem::PutInode(Tx& tx, uint64_t ino, Inode& in) {
  extent::SealInode(in);
  // Three records around the orphan links, which belong to the orphan list: a stale copy
  // of them here would undo a change made in another inode's transaction.
  const uint64_t off = extent::InodeOff(sb_, ino);
  const auto* b = reinterpret_cast<const uint8_t*>(&in);
  constexpr uint32_t kNext = offsetof(Inode, next_orphan), kPrev = offsetof(Inode, prev_orphan);
  tx.Write(off, b, kNext);
  tx.Write(off + kNext + 8, b + kNext + 8, kPrev - kNext - 8);
  tx.Write(off + kPrev + 8, b + kPrev + 8, sizeof(Inode) - kPrev - 8);
}

void FileSystem::PutNewInode(Tx& tx, uint64_t ino, Inode& in) {
  PutInode(tx, ino, in);
  // The links too: whatever a free slot held there (it is on no list) must not survive.
  // No orphan_mu_ needed: no list operation touches a free slot.
  StageOrphanLinks(tx, ino, 0, 0);
}

uint64_t FileSystem::OrphanLink(Tx& tx, uint64_t ino, OrphanLinkKind which) const {
  // Only the link word: the rest of another inode may be changing under its own lock.
  return tx.Get<uint64_t>(extent::InodeOff(sb_, ino) +
                          (which == kNextOrphan ? offsetof(Inode, next_orphan) : offsetof(Inode, prev_orphan)));
}

void FileSystem::StageOrphanLinks(Tx& tx, uint64_t ino, uint64_t next, uint64_t prev) {
  const uint64_t off = extent::InodeOff(sb_, ino);
  tx.Put(off + offsetof(Inode, next_orphan), next);
  tx.Put(off + offsetof(Inode, prev_orphan), prev);
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

Entry FileSystem::MakeEntry(Node& n, const Inode& in) {
  {
    std::lock_guard lk(table_mu_);
    n.nlookup++;
  }
  return Entry{n.ino, in.generation, ToStat(n.ino, in)};
}

Result<extent::ExtentMap*> FileSystem::Extents(Node& n, const Inode& in) {
  std::lock_guard lk(n.load_mu);
  if (!n.extents) {
    auto m = extent::ExtentMap::Load(*region_, sb_, n.ino, in);
    if (!m.ok()) {
      ReportDamage(n.ino, "extent map: " + m.error().Message());
      return Error(m.error());
    }
    PMEMFS_TRY(ClaimBlocks(n.ino, in, *m));
    n.extents.emplace(std::move(m).value());
  }
  return &*n.extents;
}

void FileSystem::ForEachOwnedRun(const Inode& in, const extent::ExtentMap& map,
                                 const std::function<void(uint64_t, uint64_t)>& fn) const {
  for (const auto& [lblk, entry] : map.entries()) fn(entry.e.pblk, entry.e.len);
  uint64_t hops = 0;  // the chain was validated when the map was loaded; bounded anyway
  for (uint64_t blk = in.extent_block; blk && extent::BlockRefOk(sb_, blk) && hops++ < sb_.total_blocks;
       blk = region_->At<format::ExtentBlock>(blk)->next)
    fn(blk / kBlockSize, 1);
  if (in.xattr_block) {
    const uint32_t nb = region_->At<format::XattrBlockHeader>(in.xattr_block)->nblocks;  // 0: one block
    fn(in.xattr_block / kBlockSize, std::clamp<uint32_t>(nb, 1, format::kMaxXattrBlocks));
  }
}

Status FileSystem::ClaimBlocks(uint64_t ino, const Inode& in, const extent::ExtentMap& map) {
  // Whether `other`, an inode whose map is loaded, still owns a block of [start, end).
  // Asked without waiting (its node may be locked by a thread that waits for ours): a
  // busy owner counts as not owning, which only weakens the guard for that moment.
  auto still_owns = [&](uint64_t other, uint64_t start, uint64_t end) {
    NodeRef on;
    {
      std::lock_guard tl(table_mu_);
      auto it = nodes_.find(other);
      if (it == nodes_.end()) return false;
      on = it->second;
    }
    std::shared_lock ol(on->mu, std::try_to_lock);
    if (!ol.owns_lock()) return false;
    std::unique_lock ll(on->load_mu, std::try_to_lock);
    if (!ll.owns_lock() || !on->extents) return false;
    Inode oin;
    std::memcpy(&oin, region_->base() + extent::InodeOff(sb_, other), sizeof(oin));
    bool owns = false;
    ForEachOwnedRun(oin, *on->extents, [&](uint64_t s, uint64_t len) { owns |= s < end && start < s + len; });
    return owns;
  };
  std::lock_guard lk(owned_mu_);
  Status bad;
  ForEachOwnedRun(in, map, [&](uint64_t start, uint64_t len) {
    if (!bad.ok()) return;
    if (!alloc_.Taken(extent::Run{start, len})) {
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
    // Entries go stale as maps change: start again from the maps loaded now (those whose
    // node is free to be read this instant).
    std::vector<NodeRef> loaded;
    {
      std::lock_guard tl(table_mu_);
      for (const auto& [other, node] : nodes_)
        if (other != ino) loaded.push_back(node);
    }
    owned_.clear();
    for (const NodeRef& on : loaded) {
      std::shared_lock ol(on->mu, std::try_to_lock);
      if (!ol.owns_lock()) continue;
      std::unique_lock ll(on->load_mu, std::try_to_lock);
      if (!ll.owns_lock() || !on->extents) continue;
      Inode oin;
      std::memcpy(&oin, region_->base() + extent::InodeOff(sb_, on->ino), sizeof(oin));
      ForEachOwnedRun(oin, *on->extents, [&](uint64_t s, uint64_t len) { owned_[s] = {s + len, on->ino}; });
    }
    ForEachOwnedRun(in, map, [&](uint64_t s, uint64_t len) { owned_[s] = {s + len, ino}; });
    owned_rebuild_at_ = std::max<size_t>(4096, owned_.size() * 2);
  }
  return Ok();
}

Result<DirIndex*> FileSystem::Dir(Node& n, const Inode& in) {
  if (!S_ISDIR(in.mode)) return Err(ENOTDIR, "not a directory");
  {
    std::lock_guard lk(n.load_mu);
    if (n.dir) return n.dir.get();
  }
  PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(n, in));
  std::vector<uint64_t> blocks;
  uint64_t next = 0;
  for (const auto& [lblk, entry] : map->entries()) {
    if (lblk != next || (entry.e.flags & format::kExtentUnwritten)) return Err(EUCLEAN, "directory has a hole");
    for (uint32_t i = 0; i < entry.e.len; ++i) blocks.push_back(format::BlockOff(entry.e.pblk + i));
    next = lblk + entry.e.len;
  }
  auto d = DirIndex::Load(*region_, std::move(blocks));
  if (!d.ok()) {
    ReportDamage(n.ino, "directory: " + d.error().Message());
    return Error(d.error());
  }
  std::lock_guard lk(n.load_mu);
  if (!n.dir) n.dir = std::make_unique<DirIndex>(std::move(d).value());
  return n.dir.get();
}

void FileSystem::DropCaches(Tx& tx, Node& n) {
  tx.OnAbort([&n] {
    std::lock_guard lk(n.load_mu);
    n.extents.reset();
    n.dir.reset();
    n.has_capability_xattr = -1;
  });
}

// ---- attributes -------------------------------------------------------------------------------

Result<struct stat> FileSystem::GetAttr(uint64_t ino) {
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
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
  NodeRef n = GetNode(ino);
  std::unique_lock lk(n->mu);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  format::Timespec now = Now();
  auto apply = [&](Tx& tx, Inode& m) -> Status {
    if (a.mask & kSetMode) m.mode = (m.mode & S_IFMT) | (a.mode & 07777);
    // chown_common() decides what to kill from the inode as it was: group membership is
    // checked against the old group, not the one being given.
    if (a.mask & (kSetUid | kSetGid)) PMEMFS_TRY(KillPrivsLocked(ctx, tx, *n, m, /*chown=*/true));
    if (a.mask & kSetUid) m.uid = a.uid;
    if (a.mask & kSetGid) m.gid = a.gid;
    if (a.mask & kSetAtimeNow) m.atime = now;
    else if (a.mask & kSetAtime) m.atime = FromTimespec(a.atime);
    if (a.mask & kSetMtimeNow) m.mtime = now;
    else if (a.mask & kSetMtime) m.mtime = FromTimespec(a.mtime);
    if (a.mask & kSetSize) m.mtime = now;
    m.ctime = (a.mask & kSetCtime) ? FromTimespec(a.ctime) : now;
    if (a.mask & kSetSize) PMEMFS_TRY(KillPrivsLocked(ctx, tx, *n, m, /*chown=*/false));
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
    PMEMFS_TRY(SetSizeLocked(*n, a.size, apply));
    PMEMFS_ASSIGN_OR_RETURN(in, LoadInode(ino));
    return ToStat(ino, in);
  }
  Tx tx(*region_);
  DropCaches(tx, *n);
  PMEMFS_TRY(apply(tx, in));
  PutInode(tx, ino, in);
  PMEMFS_TRY(Commit(tx));
  return ToStat(ino, in);
}

Status FileSystem::KillPrivsLocked(const Ctx& ctx, Tx& tx, Node& n, Inode& in, bool chown) {
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
    PMEMFS_ASSIGN_OR_RETURN(bool dropped, StageDropXattrLocked(tx, n, in, "security.capability"));
    changed |= dropped;
  }
  if (changed && attr_changed_) tx.OnCommit([this, ino = n.ino] { attr_changed_(ino); });
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
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  (void)in;
  std::lock_guard tl(table_mu_);
  n->open_count++;
  return Ok();
}

void FileSystem::Release(uint64_t ino) {
  {
    std::lock_guard tl(table_mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end() || it->second->open_count == 0) return;
    it->second->open_count--;
  }
  MaybeFree(ino);
}

void FileSystem::Forget(uint64_t ino, uint64_t nlookup) {
  {
    std::lock_guard tl(table_mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    Node& n = *it->second;
    n.nlookup = nlookup > n.nlookup ? 0 : n.nlookup - nlookup;
    if (n.nlookup > 0 || n.open_count > 0) return;
  }
  MaybeFree(ino);
}

void FileSystem::MaybeFree(uint64_t ino) {
  NodeRef n;
  {
    std::lock_guard tl(table_mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    // While the kernel holds a reference it can still open the inode (an open that looked
    // the name up before a rename replaced it) or read a symlink's target, and must find
    // the contents intact: the space comes back only with the last reference, open or
    // looked up. The kernel drops an unlinked inode's reference as soon as its last user
    // goes.
    if (it->second->nlookup > 0 || it->second->open_count > 0 || it->second->leases > 0) return;
    n = it->second;
  }
  {
    std::unique_lock lk(n->mu);
    auto in = LoadInode(ino);
    bool linked = !in.ok() || in->nlink > 0;
    {
      std::lock_guard tl(table_mu_);  // a lookup of "." (NFS export) may have come meanwhile
      if (n->nlookup > 0 || n->open_count > 0 || n->leases > 0) return;
    }
    if (!linked && Writable().ok()) {
      Status s = Ok();
      if (in->size > 0 || in->blocks > 0) s = TruncateBlocksLocked(*n, 0);
      if (s.ok()) s = FreeInodeLocked(*n);
      if (!s.ok()) spdlog::error("freeing inode {}: {}", ino, s.error().Message());
    }
  }
  n.reset();
  std::lock_guard tl(table_mu_);
  DropNodeIfUnusedLocked(ino);
}

void FileSystem::OrphanAddLocked(Tx& tx, uint64_t ino, Inode& in) {
  auto st = tx.Get<format::StateBlock>(sb_.state_off);
  in.flags |= format::kInodeOrphan;
  in.prev_orphan = 0;
  in.next_orphan = st.orphan_head;
  StageOrphanLinks(tx, ino, in.next_orphan, 0);
  if (st.orphan_head) StageOrphanLinks(tx, st.orphan_head, OrphanLink(tx, st.orphan_head, kNextOrphan), ino);
  st.orphan_head = ino;
  tx.Put(sb_.state_off, st);
}

void FileSystem::OrphanRemoveLocked(Tx& tx, uint64_t ino, Inode& in) {
  if (!(in.flags & format::kInodeOrphan)) return;
  // The links as the orphan list has them now.
  const uint64_t cur_next = OrphanLink(tx, ino, kNextOrphan), cur_prev = OrphanLink(tx, ino, kPrevOrphan);
  if (cur_prev) {
    StageOrphanLinks(tx, cur_prev, cur_next, OrphanLink(tx, cur_prev, kPrevOrphan));
  } else {
    auto st = tx.Get<format::StateBlock>(sb_.state_off);
    if (st.orphan_head == ino) {
      st.orphan_head = cur_next;
      tx.Put(sb_.state_off, st);
    }
  }
  if (cur_next) StageOrphanLinks(tx, cur_next, OrphanLink(tx, cur_next, kNextOrphan), cur_prev);
  in.flags &= ~format::kInodeOrphan;
  in.next_orphan = in.prev_orphan = 0;
  StageOrphanLinks(tx, ino, 0, 0);
}

Status FileSystem::FreeInodeLocked(Node& n) {
  const uint64_t ino = n.ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(extent::ExtentMap * map, Extents(n, in));
  if (!map->entries().empty()) return Err(EUCLEAN, "freeing an inode that still maps blocks");
  std::unique_lock orphans(orphan_mu_);
  Tx tx(*region_);
  DropCaches(tx, n);
  OrphanRemoveLocked(tx, ino, in);
  map->FreeChain(tx, in, alloc_);
  PMEMFS_TRY(StageFreeXattrsLocked(tx, n, in));
  uint32_t generation = in.generation;
  in = Inode{};
  in.generation = generation;  // the next user of the slot bumps it
  PutInode(tx, ino, in);
  ibitmap_.StageFree(tx, ino);
  PMEMFS_TRY(Commit(tx));
  std::lock_guard lk(n.load_mu);
  n.extents.reset();
  n.dir.reset();
  return Ok();
}

Status FileSystem::Fsync(uint64_t ino) {  // NOLINT
  // Data and metadata are durable before every reply; nothing is pending.
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  (void)in;
  return Ok();
}

}  // namespace pmemfs::fs
