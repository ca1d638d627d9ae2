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
  auto it = by_off_.find(off);
  if (it != by_off_.end() && records_[it->second].len == len) {
    std::memcpy(data_.data() + records_[it->second].data, src, len);
    return;
  }
  Record r{off, len, data_.size()};
  data_.insert(data_.end(), static_cast<const uint8_t*>(src), static_cast<const uint8_t*>(src) + len);
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
}

void Tx::Committed() {
  done_ = true;
  for (auto& fn : on_commit_) fn();
}

}  // namespace pmemfs::extent
