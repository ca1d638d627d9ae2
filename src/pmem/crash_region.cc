// SPDX-License-Identifier: BSD-3-Clause
#include "pmem/crash_region.h"

#include <algorithm>
#include <cstring>

namespace pmemfs::pmem {

void CrashRegion::Flush(uint64_t off, uint64_t len) {
  if (start_.empty() || len == 0) return;  // not tracing
  std::lock_guard lk(mu_);
  // Widen to 8-byte words: the unit the media writes atomically.
  uint64_t lo = off & ~7ull, hi = std::min<uint64_t>(size(), (off + len + 7) & ~7ull);
  flushes_.push_back({lo, std::vector<uint8_t>(base() + lo, base() + hi)});
}

void CrashRegion::Drain() {
  if (start_.empty()) return;
  std::lock_guard lk(mu_);
  fence_ends_.push_back(flushes_.size());
}

void CrashRegion::StartTrace() {
  start_.assign(base(), base() + size());
  flushes_.clear();
  fence_ends_.clear();
}

size_t CrashRegion::PendingWords(size_t k) const {
  size_t begin = k == 0 ? 0 : fence_ends_[k - 1];
  size_t end = k < fence_ends_.size() ? fence_ends_[k] : flushes_.size();
  size_t words = 0;
  for (size_t i = begin; i < end; ++i) words += flushes_[i].bytes.size() / 8;
  return words;
}

std::vector<uint8_t> CrashRegion::Image(size_t k, const std::function<bool(size_t)>& keep) const {
  std::vector<uint8_t> img = start_;
  size_t durable_end = k == 0 ? 0 : fence_ends_[k - 1];
  for (size_t i = 0; i < durable_end; ++i) {
    std::memcpy(img.data() + flushes_[i].off, flushes_[i].bytes.data(), flushes_[i].bytes.size());
  }
  size_t end = k < fence_ends_.size() ? fence_ends_[k] : flushes_.size();
  size_t word = 0;
  for (size_t i = durable_end; i < end; ++i) {
    const Flushed& f = flushes_[i];
    for (size_t w = 0; w < f.bytes.size() / 8; ++w, ++word) {
      if (keep(word)) std::memcpy(img.data() + f.off + 8 * w, f.bytes.data() + 8 * w, 8);
    }
  }
  return img;
}

}  // namespace pmemfs::pmem
