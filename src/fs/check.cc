// SPDX-License-Identifier: BSD-3-Clause
// The checker's driver and its first phases: superblock, journal, state block, inodes,
// extent maps and blocks owned twice. check_internal.h has the model, check.h the contract.
#include "fs/check.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <unordered_set>

#include "extent/journal.h"
#include "extent/records.h"
#include "extent/superblock.h"
#include "extent/xattr_run.h"
#include "fs/check_internal.h"
#include "fs/filesystem.h"

namespace pmemfs::fs {
namespace check {

using format::Extent;
using format::Inode;
using format::kBlockSize;

namespace {

constexpr uint64_t kMaxSymlink = 4095;
constexpr uint64_t kMaxLblk = uint64_t{1} << 52;
constexpr int kMaxPasses = 4;

std::string N(uint64_t v) { return std::to_string(v); }

bool ValidType(uint32_t mode) {
  uint32_t t = mode & S_IFMT;
  return t == S_IFREG || t == S_IFDIR || t == S_IFLNK || t == S_IFIFO || t == S_IFSOCK || t == S_IFCHR ||
         t == S_IFBLK;
}

// Whether `slot` (a region offset) is one of inode `ino`'s inline extent slots; its index.
int InlineIndex(const format::Superblock& sb, uint64_t ino, uint64_t slot) {
  uint64_t first = extent::InodeOff(sb, ino) + offsetof(Inode, inline_extents);
  if (slot < first || slot >= first + sizeof(Inode::inline_extents)) return -1;
  return static_cast<int>((slot - first) / sizeof(Extent));
}

}  // namespace

Checker::Checker(pmem::Region& region, const CheckOptions& opts) : region_(region), opts_(opts), img_(region) {}

void Checker::Problem(const std::string& what) {
  ++found_;
  if (opts_.report) opts_.report(pass_ > 1 ? "(pass " + N(pass_) + ") " + what : what);
}

void Checker::CannotRepair(const std::string& what) {
  ++unrepairable_;
  if (opts_.report) opts_.report("  cannot repair: " + what);
}

void Checker::Info(const std::string& what) {
  if (opts_.info) opts_.info(what);
}

void Checker::Progress(const char* phase, uint64_t done, uint64_t total) {
  if (!opts_.progress || total == 0) return;
  int pct = static_cast<int>(std::min<uint64_t>(done, total) * 100 / total);
  if (pct == last_pct_ && phase == last_phase_) return;
  last_pct_ = pct;
  last_phase_ = phase;
  opts_.progress(phase, pct);
}

Facts* Checker::Find(uint64_t ino) {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : &it->second;
}

// ---- the driver -------------------------------------------------------------------------

CheckResult Checker::Run() {
  uint64_t remaining = 0;
  bool final_pass = false;
  for (int pass = 1; pass <= kMaxPasses; ++pass) {
    pass_ = pass;
    remaining = Pass(pass);
    if (res_.operational_error) return res_;
    res_.problems += remaining;
    if (remaining == 0 || !opts_.repair || final_pass || pass == kMaxPasses) break;
    unrepairable_ = 0;
    if (!Apply()) break;
    final_pass = unrepairable_ > 0;  // the next pass only counts what is left
  }
  if (opts_.repair) {
    if (remaining > 0 && unrepairable_ == 0)
      CannotRepair(N(remaining) + " problem" + (remaining == 1 ? " is" : "s are") + " still found after repairing");
    // The repairs' last transaction is still in the log: checkpoint it, so that the next
    // mount replays nothing (also after fsck replayed an unclean shutdown's transaction).
    extent::Journal j(region_, sb_);
    if (!j.Recover().ok() || !j.Checkpoint().ok()) res_.operational_error = true;
    res_.fixed = res_.problems - remaining;
  }
  return res_;
}

uint64_t Checker::Pass(int pass) {
  found_ = 0;
  img_.Clear();
  inodes_.clear();
  claims_.clear();
  kept_.clear();
  dir_blocks_.clear();
  entries_.clear();
  lost_roots_.clear();
  if (!Superblock(pass)) return 0;
  Journal(pass);
  StateBlock();
  ScanInodes();
  RecreateRoot();
  uint64_t n = 0;
  for (auto& [ino, f] : inodes_) {
    Progress("extents", n++, inodes_.size());
    ScanMaps(ino);
  }
  ResolveClaims(0, claims_.size());
  for (auto& [ino, f] : inodes_) FinishInode(ino);
  ScanDirectories();
  Graph();
  Orphans();
  BlockBitmap();
  InodeBitmap();
  return found_;
}

// ---- superblock, journal, state block ------------------------------------------------------

bool Checker::Superblock(int pass) {
  auto loaded = extent::ReadSuperblock(region_);
  if (!loaded.ok()) {
    if (opts_.report) opts_.report("no valid pmemfs superblock (primary, copy or backup): " + loaded.error().Message());
    res_.operational_error = true;
    return false;
  }
  sb_ = loaded->sb;
  // The three copies (superblock.h); never in the journal's reach, so written directly.
  const struct {
    uint64_t off;
    const char* name;
  } copies[] = {{0, "primary superblock"},
                {extent::kSuperblockCopyOff, "superblock copy in block 1"},
                {sb_.backup_off, "backup superblock"}};
  bool wrote = false;
  for (const auto& c : copies) {
    if (std::memcmp(region_.base() + c.off, &sb_, sizeof(sb_)) == 0) continue;
    Problem(std::string(c.name) + " damaged or different from the one in use (rewritten)");
    if (opts_.repair) {
      region_.CopyFlush(c.off, &sb_, sizeof(sb_));
      wrote = true;
    }
  }
  if (wrote) region_.Drain();
  (void)pass;
  return true;
}

bool Checker::Journal(int pass) {
  extent::Journal j(region_, sb_);
  if (opts_.repair) {
    auto replayed = j.Recover();
    if (!replayed.ok()) {
      Problem("journal: " + replayed.error().Message() + " (the log is discarded)");
      (void)j.Checkpoint();
    } else if (*replayed && pass == 1) {
      Info("journal: replayed the pending transaction of an unclean shutdown");
    }
    return true;
  }
  auto pending = j.Pending();
  if (!pending.ok()) {
    Problem("journal: " + pending.error().Message() + " (a mount refuses it; fsck -y discards the log)");
    return false;
  }
  for (const auto& r : *pending) img_.Write(r.off, r.bytes.data(), r.bytes.size());
  if (!pending->empty()) Info("journal: a transaction is pending; checked as a mount would replay it");
  return true;
}

void Checker::StateBlock() {
  auto st = img_.Get<format::StateBlock>(sb_.state_off);
  if (st.magic == format::kStateMagic) {
    orphan_head_ = st.orphan_head;
    return;
  }
  Problem("state block damaged (rebuilt with an empty orphan list)");
  format::StateBlock fresh{};
  fresh.magic = format::kStateMagic;
  img_.Put(sb_.state_off, fresh);
  orphan_head_ = 0;
}

// ---- inodes -------------------------------------------------------------------------------

void Checker::ScanInodes() {
  const uint64_t nwords = (sb_.inode_count + 63) / 64;
  for (uint64_t w = 0; w < nwords; ++w) {
    if (w % 1024 == 0) Progress("inodes", w, nwords);
    uint64_t word = img_.Get<uint64_t>(sb_.inode_bitmap_off + w * 8);
    if (w == nwords - 1 && sb_.inode_count % 64) word &= (uint64_t{1} << (sb_.inode_count % 64)) - 1;
    if (w == 0) word &= ~uint64_t{1};  // slot 0 is never an inode
    for (; word; word &= word - 1) CheckInode(w * 64 + std::countr_zero(word), true);
  }
  // The root, even when its bit is lost.
  if (!Find(format::kRootIno)) CheckInode(format::kRootIno, false);
}

bool Checker::CheckInode(uint64_t ino, bool marked) {
  const uint64_t off = extent::InodeOff(sb_, ino);
  Inode in = img_.Get<Inode>(off);
  if (in.mode == 0) return false;  // an empty slot (a marked one is the bitmap's problem)
  const bool crc_ok = extent::InodeCrcOk(in);
  const bool flags_ok = !(in.flags & ~format::kInodeKnownFlags);
  const bool refs_ok = extent::BlockRefOk(sb_, in.xattr_block) && extent::BlockRefOk(sb_, in.extent_block);
  const std::string who = "inode " + N(ino);
  if (!ValidType(in.mode) || (!crc_ok && (!flags_ok || !refs_ok))) {
    if (!marked) return false;  // a stale slot, not an inode
    Problem(who + ": " + (crc_ok ? "" : "checksum mismatch, ") +
            (ValidType(in.mode) ? "unknown flags or references outside the data area" : "invalid type") + " (cleared)");
    inodes_[ino].claims_begin = inodes_[ino].claims_end = claims_.size();
    Doom(ino);
    return false;
  }
  if (!marked && !crc_ok) return false;  // named but marked free: only an intact inode is taken back
  bool changed = false;
  if (!crc_ok) {
    Problem(who + ": checksum mismatch; the inode is otherwise sane (checksum rewritten)");
    changed = true;
  }
  if (!flags_ok) {
    Problem(who + ": unknown flags (cleared)");
    in.flags &= format::kInodeKnownFlags;
    changed = true;
  }
  if ((in.flags & format::kInodeImmutableExtents) &&
      (!S_ISREG(in.mode) || in.align_shift < format::kBlockShift || in.align_shift > 30)) {
    Problem(who + ": immutable extents with alignment 2^" + N(in.align_shift) + " on " +
            (S_ISREG(in.mode) ? "a regular file" : "a file that is not regular") + " (flag cleared)");
    in.flags &= ~format::kInodeImmutableExtents;
    in.align_shift = 0;
    changed = true;
  }
  if (!extent::BlockRefOk(sb_, in.xattr_block)) {
    Problem(who + ": xattr block reference outside the data area (dropped)");
    in.xattr_block = 0;
    changed = true;
  }
  if (!extent::BlockRefOk(sb_, in.extent_block)) {
    Problem(who + ": extent block reference outside the data area (the extents it held are dropped)");
    in.extent_block = 0;
    changed = true;
  }
  if (changed) {
    extent::SealInode(in);
    img_.Put(off, in);
  }
  Facts f;
  f.mode = in.mode;
  f.claims_begin = f.claims_end = claims_.size();
  inodes_[ino] = f;
  return true;
}

void Checker::RecreateRoot() {
  Facts* r = Find(format::kRootIno);
  if (r && !r->doomed && S_ISDIR(r->mode)) return;
  Problem("root directory damaged (recreated empty; what it held goes to /lost+found)");
  const uint64_t off = extent::InodeOff(sb_, format::kRootIno);
  Inode old = img_.Get<Inode>(off);
  Inode root{};
  root.mode = S_IFDIR | 0755;
  root.nlink = 2;
  root.generation = old.generation + 1 ? old.generation + 1 : 1;
  root.parent = format::kRootIno;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  root.atime = root.mtime = root.ctime = root.btime = format::Timespec{now.tv_sec, uint32_t(now.tv_nsec), 0};
  extent::SealInode(root);
  img_.Put(off, root);
  Facts f;
  f.mode = root.mode;
  f.claims_begin = f.claims_end = claims_.size();
  inodes_[format::kRootIno] = f;
}

void Checker::EditInode(uint64_t ino, const std::function<void(Inode&)>& edit) {
  const uint64_t off = extent::InodeOff(sb_, ino);
  Inode in = img_.Get<Inode>(off);
  edit(in);
  extent::SealInode(in);
  img_.Put(off, in);
}

void Checker::ZeroSlot(uint64_t ino, uint64_t slot) {
  if (int i = InlineIndex(sb_, ino, slot); i >= 0) {
    EditInode(ino, [i](Inode& in) { in.inline_extents[i] = Extent{}; });
  } else {
    img_.Put(slot, Extent{});
  }
}

// Cleared by this check: the inode slot is emptied (its generation kept, as the daemon
// does), its blocks are freed and its names removed by the later phases.
void Checker::Doom(uint64_t ino) {
  Facts& f = inodes_[ino];
  f.doomed = true;
  for (uint64_t i = f.claims_begin; i < f.claims_end; ++i) claims_[i].dropped = true;
  const uint64_t off = extent::InodeOff(sb_, ino);
  Inode empty{};
  empty.generation = img_.Get<Inode>(off).generation;
  extent::SealInode(empty);
  img_.Put(off, empty);
}

// ---- extent maps ----------------------------------------------------------------------------

void Checker::ScanMaps(uint64_t ino) {
  Facts& f = inodes_[ino];
  if (f.doomed) return;
  f.claims_begin = claims_.size();
  const uint64_t off = extent::InodeOff(sb_, ino);
  const Inode in = img_.Get<Inode>(off);
  const std::string who = "inode " + N(ino);
  struct Slot {
    Extent e;
    uint64_t slot;
    uint32_t chain;
  };
  std::vector<Slot> slots;
  for (int i = 0; i < format::kInlineExtents; ++i)
    slots.push_back({in.inline_extents[i], off + offsetof(Inode, inline_extents) + i * sizeof(Extent), 0});

  // The chain of extent blocks, cut at the first bad link.
  uint64_t ptr = off + offsetof(Inode, extent_block);
  std::unordered_set<uint64_t> seen;
  uint32_t pos = 1;
  for (uint64_t blk = in.extent_block; blk; ++pos) {
    std::string why;
    format::ExtentBlock eb{};
    if (!extent::BlockRefOk(sb_, blk)) {
      why = "outside the data area";
    } else if (!seen.insert(blk).second) {
      why = "a loop back into the chain";
    } else {
      eb = img_.Get<format::ExtentBlock>(blk);
      if (eb.magic != format::kExtentBlockMagic || eb.owner != ino) why = "not an extent block of this inode";
    }
    if (!why.empty()) {
      Problem(who + ": extent chain link " + N(pos) + " is " + why + " (the chain is cut there)");
      if (ptr == off + offsetof(Inode, extent_block)) EditInode(ino, [](Inode& i) { i.extent_block = 0; });
      else img_.Put<uint64_t>(ptr, 0);
      break;
    }
    claims_.push_back({blk / kBlockSize, 1, ino, ptr, 0, pos, 0, Kind::kChain});
    for (int i = 0; i < format::kExtentsPerBlock; ++i)
      slots.push_back({eb.slots[i], blk + offsetof(format::ExtentBlock, slots) + i * sizeof(Extent), pos});
    ptr = blk + offsetof(format::ExtentBlock, next);
    blk = eb.next;
  }

  // Extents: inside the data area, well formed, not overlapping within the file.
  std::vector<const Slot*> live;
  for (const Slot& s : slots) {
    const Extent& e = s.e;
    if (e.len == 0) continue;
    if ((e.flags & ~format::kExtentUnwritten) || !extent::InDataArea(sb_, e.pblk, e.len) || e.lblk > kMaxLblk) {
      Problem(who + ": extent at file block " + N(e.lblk) + " (region block " + N(e.pblk) + ", " + N(e.len) +
              " blocks) is malformed or outside the data area (dropped)");
      ZeroSlot(ino, s.slot);
      continue;
    }
    live.push_back(&s);
  }
  std::stable_sort(live.begin(), live.end(), [](const Slot* a, const Slot* b) { return a->e.lblk < b->e.lblk; });
  const Kind kind = S_ISDIR(f.mode) ? Kind::kDirData : Kind::kFileData;
  uint64_t end = 0;
  bool target = false;
  for (const Slot* s : live) {
    if (s->e.lblk < end) {
      Problem(who + ": extent at file block " + N(s->e.lblk) + " overlaps the one before it (dropped)");
      ZeroSlot(ino, s->slot);
      continue;
    }
    end = s->e.lblk + s->e.len;
    claims_.push_back({s->e.pblk, s->e.len, ino, s->slot, s->e.lblk, s->chain, s->e.flags, kind});
    if (s->e.lblk == 0 && !(s->e.flags & format::kExtentUnwritten)) target = true;
  }

  // The xattr run, parsed as the daemon parses it (extent/xattr_run.cc); entries with names
  // the daemon cannot serve (another namespace, NUL bytes, a repeated name) are removed.
  if (in.xattr_block) {
    format::XattrBlockHeader h;
    img_.Read(in.xattr_block, &h, sizeof(h));
    const uint32_t nblocks = h.nblocks ? h.nblocks : 1;
    bool ok = h.magic == format::kXattrBlockMagic && h.owner == ino && nblocks <= format::kMaxXattrBlocks &&
              extent::InDataArea(sb_, in.xattr_block / kBlockSize, nblocks) && h.used <= format::XattrRunSpace(nblocks);
    std::vector<uint8_t> blk(ok ? nblocks * kBlockSize : 0);
    if (ok) img_.Read(in.xattr_block, blk.data(), blk.size());
    std::vector<uint8_t> kept(sizeof(h), 0);
    uint32_t count = 0;
    std::unordered_set<std::string> names;
    for (uint64_t i = 0, p = 0; ok && i < h.count; ++i) {
      format::XattrEntry e;
      if (p + sizeof(e) > h.used) {
        ok = false;
        break;
      }
      std::memcpy(&e, blk.data() + sizeof(h) + p, sizeof(e));
      const uint64_t value_len = e.value_len | uint64_t{e.value_len_hi} << 16;
      uint64_t sz = (sizeof(e) + e.name_len + value_len + 3) & ~uint64_t{3};
      if (e.name_len == 0 || value_len > extent::kXattrValueMax || p + sz > h.used) {
        ok = false;
        break;
      }
      std::string name(reinterpret_cast<const char*>(blk.data() + sizeof(h) + p + sizeof(e)), e.name_len);
      bool valid = name.find('\0') == std::string::npos;
      bool ns = false;
      for (std::string_view prefix : {"user.", "trusted.", "security."})
        ns |= name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0;
      if (!valid || !ns || !names.insert(name).second) {
        Problem(who + ": xattr with " + (!valid || !ns ? "an invalid" : "a repeated") + " name (removed)");
      } else {
        kept.insert(kept.end(), blk.begin() + sizeof(h) + p, blk.begin() + sizeof(h) + p + sz);
        ++count;
      }
      p += sz;
    }
    if (!ok) {
      Problem(who + ": xattr run damaged (dropped)");
      EditInode(ino, [](Inode& i) { i.xattr_block = 0; });
    } else {
      if (count != h.count) {
        h.count = count;
        h.used = static_cast<uint32_t>(kept.size() - sizeof(h));
        std::memcpy(kept.data(), &h, sizeof(h));
        img_.Write(in.xattr_block, kept.data(), kept.size());
      }
      claims_.push_back(
          {in.xattr_block / kBlockSize, nblocks, ino, off + offsetof(Inode, xattr_block), 0, 0, 0, Kind::kXattr});
    }
  }
  f.claims_end = claims_.size();

  // A symlink is its target: 1..4095 bytes in a written block at file block 0 (Readlink).
  if (S_ISLNK(f.mode) && (in.size == 0 || in.size > kMaxSymlink || !target)) {
    Problem("symlink " + N(ino) + ": " +
            (in.size == 0 || in.size > kMaxSymlink ? "size " + N(in.size) + " (not 1..4095)" : "no target block") +
            " (cleared)");
    Doom(ino);
  }
}

// Every block has one owner. Claims are taken in rank order (extent blocks, xattr blocks,
// directory data, file data; then by inode number, chain position and file block); a claim
// that meets a block already taken loses.
void Checker::ResolveClaims(uint64_t begin, uint64_t end) {
  std::vector<uint64_t> order;
  for (uint64_t i = begin; i < end; ++i) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](uint64_t a, uint64_t b) {
    const Claim &x = claims_[a], &y = claims_[b];
    return std::tie(x.kind, x.ino, x.chain, x.lblk) < std::tie(y.kind, y.ino, y.chain, y.lblk);
  });
  for (uint64_t i : order) {
    Claim& c = claims_[i];
    if (c.dropped) continue;
    Facts& f = inodes_[c.ino];
    if (f.doomed || c.chain >= f.chain_cut) {
      c.dropped = true;  // its chain was cut (reported there), or its inode cleared
      continue;
    }
    const uint64_t s = c.pblk, e = c.pblk + c.len;
    auto it = kept_.upper_bound(s);
    uint64_t other = 0;
    bool hit = false;
    if (it != kept_.begin() && std::prev(it)->second.first > s) {
      hit = true;
      other = std::prev(it)->second.second;
    } else if (it != kept_.end() && it->first < e) {
      hit = true;
      other = it->second.second;
    }
    if (hit) {
      DropClaim(c, other);
      continue;
    }
    kept_.emplace(s, std::make_pair(e, c.ino));
  }
}

void Checker::DropClaim(Claim& c, uint64_t other) {
  c.dropped = true;
  Facts& f = inodes_[c.ino];
  const std::string who = "inode " + N(c.ino);
  const std::string also = " also owned by inode " + N(other);
  switch (c.kind) {
    case Kind::kChain:
      Problem(who + ": extent block at region block " + N(c.pblk) + " is" + also + " (the chain is cut there)");
      if (c.slot == extent::InodeOff(sb_, c.ino) + offsetof(Inode, extent_block))
        EditInode(c.ino, [](Inode& in) { in.extent_block = 0; });
      else
        img_.Put<uint64_t>(c.slot, 0);
      f.chain_cut = std::min(f.chain_cut, c.chain);
      break;
    case Kind::kXattr:
      Problem(who + ": xattr block at region block " + N(c.pblk) + " is" + also + " (dropped)");
      EditInode(c.ino, [](Inode& in) { in.xattr_block = 0; });
      break;
    default:
      Problem(who + ": region blocks " + N(c.pblk) + ".." + N(c.pblk + c.len - 1) + " (file block " + N(c.lblk) +
              ") are" + also + " (extent dropped: that part of the file reads as zeros)");
      ZeroSlot(c.ino, c.slot);
      break;
  }
}

// After the claims are settled: directories as the daemon reads them (written blocks from
// file block 0, no holes), symlinks still with their target, block counts.
void Checker::FinishInode(uint64_t ino) {
  Facts& f = inodes_[ino];
  if (f.doomed) return;
  const uint64_t off = extent::InodeOff(sb_, ino);
  const std::string who = "inode " + N(ino);
  std::vector<Claim*> data;
  for (uint64_t i = f.claims_begin; i < f.claims_end; ++i) {
    Claim& c = claims_[i];
    if (!c.dropped && (c.kind == Kind::kDirData || c.kind == Kind::kFileData)) data.push_back(&c);
  }
  std::sort(data.begin(), data.end(), [](const Claim* a, const Claim* b) { return a->lblk < b->lblk; });
  if (S_ISLNK(f.mode) && (data.empty() || data.front()->lblk != 0 || (data.front()->flags & format::kExtentUnwritten))) {
    Problem("symlink " + N(ino) + ": its target block is gone (cleared)");
    Doom(ino);
    return;
  }
  if (S_ISDIR(f.mode)) {
    std::vector<uint64_t> blocks;
    bool unwritten = false, renumbered = false;
    for (Claim* c : data) {
      if (c->flags & format::kExtentUnwritten) {
        unwritten = true;
        c->dropped = true;
        ZeroSlot(ino, c->slot);
        continue;
      }
      if (c->lblk != blocks.size()) {
        renumbered = true;
        c->lblk = blocks.size();
        Extent e{c->lblk, c->pblk, static_cast<uint32_t>(c->len), c->flags};
        if (int i = InlineIndex(sb_, ino, c->slot); i >= 0) EditInode(ino, [i, e](Inode& in) { in.inline_extents[i] = e; });
        else img_.Put(c->slot, e);
      }
      for (uint64_t k = 0; k < c->len; ++k) blocks.push_back(format::BlockOff(c->pblk + k));
    }
    if (unwritten) Problem("directory " + N(ino) + ": unwritten extent (dropped; the daemon refuses it)");
    if (renumbered) Problem("directory " + N(ino) + ": has a hole (its blocks are renumbered)");
    dir_blocks_[ino] = std::move(blocks);
  }
  if (Inode in = img_.Get<Inode>(off); S_ISREG(f.mode) && in.size > kMaxFileSize) {
    // The size is beyond any the daemon serves: keep what the map holds.
    const uint64_t size = std::min(kMaxFileSize, data.empty() ? 0 : (data.back()->lblk + data.back()->len) * kBlockSize);
    Problem(who + ": size " + N(in.size) + " beyond the maximum file size (set to " + N(size) + ", the end of its blocks)");
    EditInode(ino, [size](Inode& i) { i.size = size; });
  }
  uint64_t owned = 0;
  for (uint64_t i = f.claims_begin; i < f.claims_end; ++i)
    if (!claims_[i].dropped) owned += claims_[i].len;
  f.owned = owned;
  if (Inode in = img_.Get<Inode>(off); in.blocks != owned) {
    Problem(who + ": block count " + N(in.blocks) + ", owns " + N(owned) + " (fixed)");
    EditInode(ino, [owned](Inode& i) { i.blocks = owned; });
  }
}

}  // namespace check

CheckResult Check(pmem::Region& region, const CheckOptions& opts) {
  check::Checker c(region, opts);
  return c.Run();
}

}  // namespace pmemfs::fs
