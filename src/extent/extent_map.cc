// SPDX-License-Identifier: BSD-3-Clause
#include "extent/extent_map.h"

#include <cstring>

#include "extent/records.h"

namespace pmemfs::extent {

using format::Extent;
using format::ExtentBlock;
using format::Inode;
using format::kBlockSize;

namespace {
constexpr uint64_t kMaxExtentLen = 1u << 31;
uint64_t End(const Extent& e) { return e.lblk + e.len; }
}  // namespace

Result<ExtentMap> ExtentMap::Load(const pmem::Region& region, const format::Superblock& sb, uint64_t ino,
                                  const Inode& inode) {
  ExtentMap m(region, sb, ino);
  uint64_t inode_off = InodeOff(sb, ino);
  auto add = [&](const Extent& e, uint64_t slot) -> Status {
    if (e.len == 0) {
      m.free_slots_.push_back(slot);
      return Ok();
    }
    if (!InDataArea(sb, e.pblk, e.len) || e.lblk > (uint64_t{1} << 52) || (e.flags & ~format::kExtentUnwritten))
      return Err(EUCLEAN, "extent outside the data area");
    auto [it, inserted] = m.map_.emplace(e.lblk, Entry{e, slot});
    if (!inserted) return Err(EUCLEAN, "overlapping extents");
    if (it != m.map_.begin() && End(std::prev(it)->second.e) > e.lblk) return Err(EUCLEAN, "overlapping extents");
    if (auto nx = std::next(it); nx != m.map_.end() && End(e) > nx->first) return Err(EUCLEAN, "overlapping extents");
    m.mapped_ += e.len;
    return Ok();
  };
  for (int i = 0; i < format::kInlineExtents; ++i) {
    PMEMFS_TRY(add(inode.inline_extents[i], inode_off + offsetof(Inode, inline_extents) + i * sizeof(Extent)));
  }
  uint64_t blk = inode.extent_block;
  uint64_t hops = 0;
  while (blk) {
    if (blk % kBlockSize || !InDataArea(sb, blk / kBlockSize, 1) || ++hops > sb.total_blocks)
      return Err(EUCLEAN, "bad extent block pointer");
    const auto* eb = region.At<ExtentBlock>(blk);
    if (eb->magic != format::kExtentBlockMagic || eb->owner != ino) return Err(EUCLEAN, "bad extent block");
    for (int i = 0; i < format::kExtentsPerBlock; ++i) {
      PMEMFS_TRY(add(eb->slots[i], blk + offsetof(ExtentBlock, slots) + i * sizeof(Extent)));
    }
    blk = eb->next;
  }
  return m;
}

const Extent* ExtentMap::Next(uint64_t lblk) const {
  auto it = map_.upper_bound(lblk);
  if (it != map_.begin() && End(std::prev(it)->second.e) > lblk) return &std::prev(it)->second.e;
  return it == map_.end() ? nullptr : &it->second.e;
}

void ExtentMap::WriteSlot(Tx& tx, Inode& inode, uint64_t slot, const Extent& e) {
  uint64_t inline0 = InodeOff(*sb_, ino_) + offsetof(Inode, inline_extents);
  if (slot >= inline0 && slot < inline0 + sizeof(inode.inline_extents)) {
    inode.inline_extents[(slot - inline0) / sizeof(Extent)] = e;
  } else {
    tx.Put(slot, e);
  }
}

Result<uint64_t> ExtentMap::TakeSlot(Tx& tx, Inode& inode, BlockAllocator& alloc) {
  if (free_slots_.empty()) {
    // A new extent block at the head of the chain.
    PMEMFS_ASSIGN_OR_RETURN(Run r, alloc.Reserve(1, InodeOff(*sb_, ino_) / kBlockSize, 1, true));
    alloc.StageUse(tx, r);
    ExtentBlock eb{};
    eb.magic = format::kExtentBlockMagic;
    eb.owner = ino_;
    eb.next = inode.extent_block;
    uint64_t off = format::BlockOff(r.start);
    tx.Put(off, eb);
    inode.extent_block = off;
    inode.blocks += 1;
    for (int i = format::kExtentsPerBlock - 1; i >= 0; --i)
      free_slots_.push_back(off + offsetof(ExtentBlock, slots) + i * sizeof(Extent));
  }
  // Prefer inline slots (they cost no extra record): they sit at the lowest offsets.
  auto best = free_slots_.begin();
  for (auto it = free_slots_.begin(); it != free_slots_.end(); ++it)
    if (*it < *best) best = it;
  if (*best >= sb_->data_off) best = free_slots_.end() - 1;  // no inline slot: take the cheapest pop
  uint64_t slot = *best;
  *best = free_slots_.back();
  free_slots_.pop_back();
  return slot;
}

Status ExtentMap::Place(Tx& tx, Inode& inode, Extent e, BlockAllocator& alloc) {
  PMEMFS_ASSIGN_OR_RETURN(uint64_t slot, TakeSlot(tx, inode, alloc));
  WriteSlot(tx, inode, slot, e);
  map_.emplace(e.lblk, Entry{e, slot});
  mapped_ += e.len;
  return Ok();
}

void ExtentMap::Rewrite(Tx& tx, Inode& inode, Map::iterator it, Extent e) {
  mapped_ += e.len;
  mapped_ -= it->second.e.len;
  uint64_t slot = it->second.slot;
  WriteSlot(tx, inode, slot, e);
  if (e.lblk == it->first) {
    it->second.e = e;
  } else {
    map_.erase(it);
    map_.emplace(e.lblk, Entry{e, slot});
  }
}

void ExtentMap::Drop(Tx& tx, Inode& inode, Map::iterator it) {
  WriteSlot(tx, inode, it->second.slot, Extent{});
  free_slots_.push_back(it->second.slot);
  mapped_ -= it->second.e.len;
  map_.erase(it);
}

void ExtentMap::MergeAround(Tx& tx, Inode& inode, uint64_t lblk) {
  auto it = map_.find(lblk);
  if (it == map_.end()) return;
  auto mergeable = [](const Extent& a, const Extent& b) {
    return End(a) == b.lblk && a.pblk + a.len == b.pblk && a.flags == b.flags &&
           uint64_t{a.len} + b.len <= kMaxExtentLen;
  };
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    if (mergeable(prev->second.e, it->second.e)) {
      Extent merged = prev->second.e;
      merged.len += it->second.e.len;
      Drop(tx, inode, it);
      Rewrite(tx, inode, prev, merged);
      it = prev;
    }
  }
  auto next = std::next(it);
  if (next != map_.end() && mergeable(it->second.e, next->second.e)) {
    Extent merged = it->second.e;
    merged.len += next->second.e.len;
    Drop(tx, inode, next);
    Rewrite(tx, inode, it, merged);
  }
}

Status ExtentMap::Insert(Tx& tx, Inode& inode, Extent e, BlockAllocator& alloc) {
  if (e.len == 0 || e.len > kMaxExtentLen) return Err(EINVAL, "extent length");
  // Grow a contiguous predecessor in place when possible: no new slot needed.
  auto it = map_.lower_bound(e.lblk);
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    const Extent& p = prev->second.e;
    if (End(p) == e.lblk && p.pblk + p.len == e.pblk && p.flags == e.flags &&
        uint64_t{p.len} + e.len <= kMaxExtentLen) {
      Extent grown = p;
      grown.len += e.len;
      Rewrite(tx, inode, prev, grown);
      MergeAround(tx, inode, grown.lblk);
      return Ok();
    }
  }
  PMEMFS_TRY(Place(tx, inode, e, alloc));
  MergeAround(tx, inode, e.lblk);
  return Ok();
}

Status ExtentMap::Remove(Tx& tx, Inode& inode, uint64_t lblk, uint64_t len, std::vector<Run>* freed,
                         BlockAllocator& alloc) {
  uint64_t end = lblk + len;
  while (lblk < end) {
    const Extent* n = Next(lblk);
    if (!n || n->lblk >= end) break;
    auto it = map_.find(n->lblk);
    Extent e = it->second.e;
    uint64_t cut_lo = std::max(lblk, e.lblk), cut_hi = std::min(end, End(e));
    freed->push_back(Run{e.pblk + (cut_lo - e.lblk), cut_hi - cut_lo});
    bool keep_left = cut_lo > e.lblk, keep_right = cut_hi < End(e);
    Extent left = e, right = e;
    left.len = static_cast<uint32_t>(cut_lo - e.lblk);
    right.lblk = cut_hi;
    right.pblk = e.pblk + (cut_hi - e.lblk);
    right.len = static_cast<uint32_t>(End(e) - cut_hi);
    if (keep_left && keep_right) {
      Rewrite(tx, inode, it, left);
      PMEMFS_TRY(Place(tx, inode, right, alloc));
    } else if (keep_left) {
      Rewrite(tx, inode, it, left);
    } else if (keep_right) {
      Rewrite(tx, inode, it, right);
    } else {
      Drop(tx, inode, it);
    }
    lblk = cut_hi;
  }
  return Ok();
}

Status ExtentMap::SetFlags(Tx& tx, Inode& inode, uint64_t lblk, uint64_t len, uint32_t flags,
                           BlockAllocator& alloc) {
  uint64_t end = lblk + len;
  std::vector<uint64_t> touched;
  while (lblk < end) {  // an extent may run on past `end`: stop at the range, not the map
    const Extent* n = Next(lblk);
    if (!n || n->lblk >= end) break;
    Extent e = *n;
    uint64_t lo = std::max(lblk, e.lblk), hi = std::min(end, End(e));
    lblk = hi;
    if (e.flags == flags) continue;
    auto it = map_.find(e.lblk);
    Extent mid{lo, e.pblk + (lo - e.lblk), static_cast<uint32_t>(hi - lo), flags};
    Extent left = e, right = e;
    left.len = static_cast<uint32_t>(lo - e.lblk);
    right.lblk = hi;
    right.pblk = e.pblk + (hi - e.lblk);
    right.len = static_cast<uint32_t>(End(e) - hi);
    if (left.len) {
      Rewrite(tx, inode, it, left);
      PMEMFS_TRY(Place(tx, inode, mid, alloc));
    } else {
      Rewrite(tx, inode, it, mid);
    }
    if (right.len) PMEMFS_TRY(Place(tx, inode, right, alloc));
    touched.push_back(mid.lblk);
  }
  for (uint64_t l : touched) MergeAround(tx, inode, l);
  return Ok();
}

void ExtentMap::FreeChain(Tx& tx, Inode& inode, BlockAllocator& alloc) {
  uint64_t blk = inode.extent_block;
  while (blk) {
    uint64_t next = tx.Get<uint64_t>(blk + offsetof(ExtentBlock, next));
    alloc.StageFree(tx, Run{blk / kBlockSize, 1});
    inode.blocks -= 1;
    blk = next;
  }
  inode.extent_block = 0;
  free_slots_.clear();
  for (int i = 0; i < format::kInlineExtents; ++i) inode.inline_extents[i] = Extent{};
}

}  // namespace pmemfs::extent
