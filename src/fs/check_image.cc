// SPDX-License-Identifier: BSD-3-Clause
#include "fs/check_image.h"

#include <algorithm>

namespace pmemfs::fs {

void CheckImage::Read(uint64_t off, void* dst, uint64_t len) const {
  std::memcpy(dst, region_.base() + off, len);
  if (overlay_.empty()) return;
  auto* out = static_cast<uint8_t*>(dst);
  auto it = overlay_.upper_bound(off);
  if (it != overlay_.begin()) --it;
  for (; it != overlay_.end() && it->first < off + len; ++it) {
    uint64_t lo = std::max(off, it->first), hi = std::min(off + len, it->first + it->second.size());
    if (lo < hi) std::memcpy(out + (lo - off), it->second.data() + (lo - it->first), hi - lo);
  }
}

void CheckImage::Write(uint64_t off, const void* src, uint64_t len) {
  if (len == 0) return;
  const uint64_t end = off + len;
  // Cut the ranges that overlap [off, end): keep their parts outside it.
  auto it = overlay_.upper_bound(off);
  if (it != overlay_.begin()) --it;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> keep;
  while (it != overlay_.end() && it->first < end) {
    uint64_t s = it->first, e = s + it->second.size();
    if (e <= off) {
      ++it;
      continue;
    }
    if (s < off) keep.emplace_back(s, std::vector<uint8_t>(it->second.begin(), it->second.begin() + (off - s)));
    if (e > end) keep.emplace_back(end, std::vector<uint8_t>(it->second.begin() + (end - s), it->second.end()));
    it = overlay_.erase(it);
  }
  for (auto& [s, bytes] : keep) overlay_.emplace(s, std::move(bytes));
  const auto* p = static_cast<const uint8_t*>(src);
  overlay_.emplace(off, std::vector<uint8_t>(p, p + len));
}

}  // namespace pmemfs::fs
