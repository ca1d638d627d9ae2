// SPDX-License-Identifier: BSD-3-Clause
#include "extent/allocator.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace pmemfs::extent {

using format::kBlockSize;

BlockAllocator::BlockAllocator(const pmem::Region& region, const format::Superblock& sb)
    : region_(region), sb_(sb) {}

void BlockAllocator::Load() {
  std::lock_guard lk(mu_);
  free_.clear();
  free_count_ = 0;
  const uint8_t* bm = region_.base() + sb_.block_bitmap_off;
  uint64_t nwords = (sb_.total_blocks + 63) / 64;
  uint64_t run_start = 0, run_len = 0;
  for (uint64_t w = 0; w < nwords; ++w) {
    uint64_t word;
    std::memcpy(&word, bm + w * 8, 8);
    if (word == ~0ull && run_len == 0) continue;  // fast path: all in use
    for (int b = 0; b < 64; ++b) {
      uint64_t blk = w * 64 + b;
      if (blk >= sb_.total_blocks) break;
      bool used = (word >> b) & 1;
      if (!used) {
        if (run_len == 0) run_start = blk;
        ++run_len;
      } else if (run_len) {
        free_.emplace(run_start, run_len);
        free_count_ += run_len;
        run_len = 0;
      }
    }
  }
  if (run_len) {
    free_.emplace(run_start, run_len);
    free_count_ += run_len;
  }
}

Result<Run> BlockAllocator::Reserve(uint64_t want, uint64_t goal, uint64_t align, bool exact) {
  if (want == 0) return Err(EINVAL, "allocator: empty request");
  if (align == 0) align = 1;
  std::lock_guard lk(mu_);
  auto try_run = [&](std::map<uint64_t, uint64_t>::iterator it, Run* out) {
    uint64_t s = (it->first + align - 1) / align * align;
    uint64_t e = it->first + it->second;
    if (s >= e) return false;
    uint64_t n = std::min(want, e - s);
    if (exact && n < want) return false;
    *out = Run{s, n};
    return true;
  };
  Run got{};
  bool found = false;
  // First fit from the goal, then from the start.
  auto it = free_.upper_bound(goal);
  if (it != free_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second > goal) it = prev;
  }
  for (auto i = it; i != free_.end() && !found; ++i) found = try_run(i, &got);
  for (auto i = free_.begin(); i != it && !found; ++i) found = try_run(i, &got);
  if (!found) return Err(ENOSPC, "no free space");
  // Carve `got` out of its free run.
  auto fit = std::prev(free_.upper_bound(got.start));
  Run whole{fit->first, fit->second};
  free_.erase(fit);
  if (got.start > whole.start) free_.emplace(whole.start, got.start - whole.start);
  if (got.end() < whole.end()) free_.emplace(got.end(), whole.end() - got.end());
  free_count_ -= got.len;
  return got;
}

void BlockAllocator::InsertFreeLocked(Run r) {
  auto [it, inserted] = free_.emplace(r.start, r.len);
  (void)inserted;
  if (it != free_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second == it->first) {
      prev->second += it->second;
      free_.erase(it);
      it = prev;
    }
  }
  auto next = std::next(it);
  if (next != free_.end() && it->first + it->second == next->first) {
    it->second += next->second;
    free_.erase(next);
  }
  free_count_ += r.len;
}

void BlockAllocator::Unreserve(Run r) {
  std::lock_guard lk(mu_);
  InsertFreeLocked(r);
}

void BlockAllocator::StageUse(Tx& tx, Run r) {
  StageBits(tx, r, true);
  tx.OnAbort([this, r] { Unreserve(r); });
}

void BlockAllocator::StageFree(Tx& tx, Run r) {
  StageBits(tx, r, false);
  tx.OnCommit([this, r] { Unreserve(r); });
}

void BlockAllocator::StageBits(Tx& tx, Run r, bool set) {
  // Bit operations, resolved at commit: other transactions may change other bits of the
  // same words meanwhile.
  for (uint64_t b = r.start; b < r.end();) {
    uint64_t w = b / 64, first = b % 64, n = std::min<uint64_t>(64 - first, r.end() - b);
    uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << first;
    uint64_t off = sb_.block_bitmap_off + w * 8;
    if (set) tx.SetBits(off, mask);
    else tx.ClearBits(off, mask);
    b += n;
  }
}

uint64_t BlockAllocator::free_blocks() const {
  std::lock_guard lk(mu_);
  return free_count_;
}

bool BlockAllocator::Taken(Run r) const {
  std::lock_guard lk(mu_);
  auto it = free_.upper_bound(r.start);
  if (it != free_.begin() && std::prev(it)->first + std::prev(it)->second > r.start) return false;
  return it == free_.end() || it->first >= r.end();
}

std::vector<Run> BlockAllocator::TakenRuns() const {
  std::vector<Run> out;
  std::lock_guard lk(mu_);
  uint64_t pos = 0;
  for (const auto& [start, len] : free_) {
    if (start > pos) out.push_back({pos, start - pos});
    pos = start + len;
  }
  if (pos < sb_.total_blocks) out.push_back({pos, sb_.total_blocks - pos});
  return out;
}

bool BlockAllocator::InUse(Run r) const {
  const uint8_t* bm = region_.base() + sb_.block_bitmap_off;
  for (uint64_t b = r.start; b < r.end(); ++b)
    if (!((bm[b / 8] >> (b % 8)) & 1)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------

InodeBitmap::InodeBitmap(const pmem::Region& region, const format::Superblock& sb)
    : region_(region), sb_(sb) {}

void InodeBitmap::Load() {
  std::lock_guard lk(mu_);
  const uint8_t* bm = region_.base() + sb_.inode_bitmap_off;
  uint64_t nwords = (sb_.inode_count + 63) / 64;
  taken_.assign(nwords, 0);
  uint64_t used = 0;
  for (uint64_t w = 0; w < nwords; ++w) {
    uint64_t word;
    std::memcpy(&word, bm + w * 8, 8);
    if (w == sb_.inode_count / 64 && sb_.inode_count % 64) word |= ~((1ull << (sb_.inode_count % 64)) - 1);
    taken_[w] = word;
    used += std::popcount(word);
  }
  free_ = nwords * 64 - used;
  cursor_ = 0;
  committed_ = taken_;
}

Result<uint64_t> InodeBitmap::Allocate(Tx& tx) {
  std::lock_guard lk(mu_);
  if (free_ == 0) return Err(ENOSPC, "inode table full");
  const uint64_t nwords = taken_.size();
  for (uint64_t i = 0; i < nwords; ++i) {
    uint64_t w = (cursor_ + i) % nwords;
    if (taken_[w] == ~0ull) continue;
    int bit = std::countr_one(taken_[w]);
    uint64_t ino = w * 64 + bit;
    taken_[w] |= 1ull << bit;
    cursor_ = w;
    --free_;
    tx.SetBits(sb_.inode_bitmap_off + w * 8, 1ull << bit);
    tx.OnAbort([this, ino] { Release(ino); });
    tx.OnCommit([this, ino] {
      std::lock_guard l(mu_);
      committed_[ino / 64] |= 1ull << (ino % 64);
    });
    return ino;
  }
  return Err(ENOSPC, "inode table full");
}

void InodeBitmap::Release(uint64_t ino) {
  std::lock_guard l(mu_);
  taken_[ino / 64] &= ~(1ull << (ino % 64));
  ++free_;
}

void InodeBitmap::StageFree(Tx& tx, uint64_t ino) {
  tx.ClearBits(sb_.inode_bitmap_off + (ino / 64) * 8, 1ull << (ino % 64));
  // Reusable once the freeing transaction has committed.
  tx.OnCommit([this, ino] {
    {
      std::lock_guard l(mu_);
      committed_[ino / 64] &= ~(1ull << (ino % 64));
    }
    Release(ino);
  });
}

bool InodeBitmap::InUse(uint64_t ino) const {
  std::lock_guard lk(mu_);
  return ino < sb_.inode_count && ((committed_[ino / 64] >> (ino % 64)) & 1);
}

uint64_t InodeBitmap::free_inodes() const {
  std::lock_guard lk(mu_);
  return free_;
}

}  // namespace pmemfs::extent
