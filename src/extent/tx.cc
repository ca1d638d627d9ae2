// SPDX-License-Identifier: BSD-3-Clause
#include "extent/tx.h"

#include <algorithm>
#include <cstring>

#include "extent/format.h"

namespace pmemfs::extent {

Tx::~Tx() {
  if (!done_) {
    for (auto& fn : on_abort_) fn();
  }
}

void Tx::Write(uint64_t off, const void* src, uint32_t len) {
  if (len == 0) return;
  const auto* bytes = static_cast<const uint8_t*>(src);
  auto it = by_off_.find(off);
  if (it != by_off_.end() && records_[it->second].len == len) {
    // Rewrite the earlier record of this exact range in place (a structure staged twice
    // costs one record). Records staged after it are applied after it at commit: those
    // that overlap the range get the new bytes too, or they would put back stale ones.
    for (size_t i = it->second; i < records_.size(); ++i) {
      const Record& r = records_[i];
      uint64_t lo = std::max(off, r.off), hi = std::min(off + len, r.off + r.len);
      if (lo < hi) std::memcpy(data_.data() + r.data + (lo - r.off), bytes + (lo - off), hi - lo);
    }
    return;
  }
  Record r{off, len, data_.size()};
  data_.insert(data_.end(), bytes, bytes + len);
  by_off_[off] = records_.size();
  records_.push_back(r);
  log_bytes_ += sizeof(format::JournalRecord) + ((len + 7) & ~7u);
}

void Tx::Read(uint64_t off, void* dst, uint32_t len) const {
  std::memcpy(dst, region_.base() + off, len);
  auto* out = static_cast<uint8_t*>(dst);
  for (const Record& r : records_) {  // in order: a later record wins
    uint64_t lo = std::max(off, r.off), hi = std::min(off + len, r.off + r.len);
    if (lo < hi) std::memcpy(out + (lo - off), data_.data() + r.data + (lo - r.off), hi - lo);
  }
  // Bit operations apply last, as at commit.
  for (auto it = bits_.lower_bound(off & ~7ull); it != bits_.end() && it->first < off + len; ++it) {
    uint64_t word;
    uint64_t w = it->first;
    std::memcpy(&word, region_.base() + w, 8);
    for (const Record& r : records_) {
      uint64_t lo = std::max(w, r.off), hi = std::min(w + 8, r.off + r.len);
      if (lo < hi) std::memcpy(reinterpret_cast<uint8_t*>(&word) + (lo - w), data_.data() + r.data + (lo - r.off), hi - lo);
    }
    word = it->second.Apply(word);
    uint64_t lo = std::max(off, w), hi = std::min(off + len, w + 8);
    if (lo < hi) std::memcpy(out + (lo - off), reinterpret_cast<uint8_t*>(&word) + (lo - w), hi - lo);
  }
}

void Tx::Committed() {
  done_ = true;
  for (auto& fn : on_commit_) fn();
}

}  // namespace pmemfs::extent
