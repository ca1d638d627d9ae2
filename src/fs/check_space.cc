// SPDX-License-Identifier: BSD-3-Clause
// The checker's space phases: both bitmaps rewritten from what is in use, streamed a
// block of bitmap at a time against the sorted runs in use (no per-block table); and
// committing a pass's repairs through the journal.
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>

#include "extent/journal.h"
#include "extent/records.h"
#include "extent/tx.h"
#include "fs/check_internal.h"
#include "fs/filesystem.h"

namespace pmemfs::fs::check {

using format::kBlockSize;

namespace {

std::string N(uint64_t v) { return std::to_string(v); }
constexpr uint64_t kWordsPerChunk = kBlockSize / 8;

// Compares a bitmap with `want(word_index)` over `nbits` bits and puts the corrected words
// into `img` (bits at and past `nbits` are kept as they are). Returns the counts of bits
// set that should be clear and clear that should be set; `explained(bit)` excludes a bit
// from the counts (its change was reported already).
template <typename Want, typename Explained>
std::pair<uint64_t, uint64_t> Reconcile(CheckImage& img, uint64_t off, uint64_t nbits, Want want, Explained explained,
                                        const std::function<void(uint64_t, uint64_t)>& progress) {
  const uint64_t nwords = (nbits + 63) / 64;
  uint64_t extra = 0, missing = 0;
  std::vector<uint64_t> words(kWordsPerChunk);
  for (uint64_t w0 = 0; w0 < nwords; w0 += kWordsPerChunk) {
    progress(w0, nwords);
    const uint64_t n = std::min(kWordsPerChunk, nwords - w0);
    img.Read(off + w0 * 8, words.data(), n * 8);
    uint64_t first = n, last = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t w = w0 + i;
      const uint64_t valid = (w + 1) * 64 <= nbits ? ~uint64_t{0} : (uint64_t{1} << (nbits - w * 64)) - 1;
      const uint64_t expect = want(w) & valid, have = words[i] & valid;
      if (expect == have) continue;
      for (uint64_t d = expect ^ have; d; d &= d - 1) {
        uint64_t bit = w * 64 + std::countr_zero(d);
        if (explained(bit)) continue;
        ((have >> (bit % 64)) & 1 ? extra : missing)++;
      }
      words[i] = (words[i] & ~valid) | expect;
      first = std::min(first, i);
      last = i;
    }
    if (first < n) img.Write(off + (w0 + first) * 8, words.data() + first, (last - first + 1) * 8);
  }
  return {extra, missing};
}

}  // namespace

void Checker::BlockBitmap() {
  // Runs in use: the fixed metadata, the backup superblock, every claim kept.
  std::vector<std::pair<uint64_t, uint64_t>> runs = {{0, sb_.data_off / kBlockSize},
                                                     {sb_.backup_off / kBlockSize, sb_.backup_off / kBlockSize + 1}};
  for (const Claim& c : claims_)
    if (!c.dropped && !inodes_[c.ino].doomed) runs.emplace_back(c.pblk, c.pblk + c.len);
  std::sort(runs.begin(), runs.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& r : runs) {
    if (!merged.empty() && r.first <= merged.back().second) merged.back().second = std::max(merged.back().second, r.second);
    else merged.push_back(r);
  }
  size_t next = 0;
  auto want = [&](uint64_t w) {
    const uint64_t lo = w * 64, hi = lo + 64;
    while (next < merged.size() && merged[next].second <= lo) ++next;
    uint64_t word = 0;
    for (size_t j = next; j < merged.size() && merged[j].first < hi; ++j) {
      uint64_t a = std::max(lo, merged[j].first) - lo, b = std::min(hi, merged[j].second) - lo;
      word |= (b - a == 64 ? ~uint64_t{0} : ((uint64_t{1} << (b - a)) - 1) << a);
    }
    return word;
  };
  auto [leaked, unmarked] = Reconcile(img_, sb_.block_bitmap_off, sb_.total_blocks, want, [](uint64_t) { return false; },
                                      [&](uint64_t d, uint64_t t) { Progress("block bitmap", d, t); });
  if (unmarked) Problem(N(unmarked) + " blocks in use but marked free in the block bitmap (marked)");
  if (leaked) Problem(N(leaked) + " blocks marked in use but owned by nothing (freed)");
}

void Checker::InodeBitmap() {
  auto it = inodes_.begin();
  auto want = [&](uint64_t w) {
    const uint64_t lo = w * 64, hi = lo + 64;
    while (it != inodes_.end() && it->first < lo) ++it;
    uint64_t word = w == 0 ? 1 : 0;  // slot 0 is reserved: always marked
    for (auto j = it; j != inodes_.end() && j->first < hi; ++j)
      if (!j->second.doomed) word |= uint64_t{1} << (j->first - lo);
    return word;
  };
  // Cleared and taken-back inodes were reported where they were found.
  auto explained = [&](uint64_t ino) { return inodes_.count(ino) > 0; };
  auto [extra, missing] = Reconcile(img_, sb_.inode_bitmap_off, sb_.inode_count, want, explained,
                                    [&](uint64_t d, uint64_t t) { Progress("inode bitmap", d, t); });
  if (extra) Problem("inode bitmap: " + N(extra) + " slots marked in use hold no inode (freed)");
  if (missing) Problem("inode bitmap: " + N(missing) + " slots marked free should be in use (marked)");
}

// Commits the overlay through the journal, in transactions that fit the log (a crash in
// between leaves a partly repaired region that the next fsck finishes), then links the
// lost subtrees into /lost+found through the filesystem itself.
bool Checker::Apply() {
  extent::Journal j(region_, sb_);
  if (!j.Recover().ok()) (void)j.Checkpoint();
  const uint64_t chunk = std::clamp<uint64_t>(j.capacity() / 4, 8, 64 << 10) & ~uint64_t{7};
  auto tx = std::make_unique<extent::Tx>(region_);
  auto commit = [&]() {
    Status s = j.Commit(*tx);
    if (!s.ok()) CannotRepair("committing the repairs: " + s.error().Message());
    tx = std::make_unique<extent::Tx>(region_);
    return s.ok();
  };
  for (const auto& [off, bytes] : img_.overlay()) {
    for (uint64_t done = 0; done < bytes.size();) {
      const uint64_t n = std::min<uint64_t>(chunk, bytes.size() - done);
      if (tx->log_bytes() + sizeof(format::JournalRecord) + ((n + 7) & ~uint64_t{7}) > j.capacity() && !commit())
        return false;
      tx->Write(off + done, bytes.data() + done, static_cast<uint32_t>(n));
      done += n;
    }
  }
  if (!commit()) return false;
  img_.Clear();
  if (lost_roots_.empty()) return true;
  auto fs = FileSystem::Mount(region_, {});
  if (!fs.ok()) {
    CannotRepair("linking lost inodes into /lost+found: the repaired region does not mount: " + fs.error().Message());
    return true;
  }
  for (uint64_t ino : lost_roots_) {
    if (Status s = (*fs)->Reattach(ino); !s.ok())
      CannotRepair("inode " + N(ino) + ": linking into /lost+found: " + s.error().Message());
  }
  return true;
}

}  // namespace pmemfs::fs::check
