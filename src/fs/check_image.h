// SPDX-License-Identifier: BSD-3-Clause
// CheckImage: fsck's view of a region: the region's bytes with an overlay of changes that
// are not (yet) on it. fsck -n puts the journal's pending transaction there (the state a
// mount would see, without writing), and both modes put their repairs there, so that each
// later phase sees the earlier phases' decisions and -n reports what -y would do. fsck -y
// then commits the overlay through the journal. Memory is proportional to the overlay,
// never to the region.
//
// Thread-safety: none (fsck is single-threaded).
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "pmem/region.h"

namespace pmemfs::fs {

class CheckImage {
 public:
  explicit CheckImage(const pmem::Region& region) : region_(region) {}

  uint64_t size() const { return region_.size(); }
  bool Contains(uint64_t off, uint64_t len) const { return region_.Contains(off, len); }

  // Bytes [off, off+len) as a mount would see them. REQUIRES: Contains(off, len).
  void Read(uint64_t off, void* dst, uint64_t len) const;
  template <typename T>
  T Get(uint64_t off) const {
    T v;
    Read(off, &v, sizeof(T));
    return v;
  }
  // Replaces [off, off+len) in the overlay (a later write wins). REQUIRES: Contains(off, len).
  void Write(uint64_t off, const void* src, uint64_t len);
  template <typename T>
  void Put(uint64_t off, const T& v) {
    Write(off, &v, sizeof(T));
  }

  // The overlay: disjoint byte ranges by offset.
  const std::map<uint64_t, std::vector<uint8_t>>& overlay() const { return overlay_; }
  bool dirty() const { return !overlay_.empty(); }
  void Clear() { overlay_.clear(); }

 private:
  const pmem::Region& region_;
  std::map<uint64_t, std::vector<uint8_t>> overlay_;  // start -> bytes, disjoint, not adjacent-merged
};

}  // namespace pmemfs::fs
