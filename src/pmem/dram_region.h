// SPDX-License-Identifier: BSD-3-Clause
// DramRegion: the region in ordinary memory, for unit tests. Flush and Drain do nothing.
#pragma once

#include <memory>

#include "pmem/region.h"

namespace pmemfs::pmem {

class DramRegion : public Region {
 public:
  explicit DramRegion(uint64_t size, uint64_t alignment = 4096);
  ~DramRegion() override;

  uint64_t alignment() const override { return alignment_; }
  Granularity granularity() const override { return Granularity::kCacheLine; }
  void Flush(uint64_t, uint64_t) override {}
  void Drain() override {}
  std::string Describe() const override { return "dram"; }

 private:
  uint64_t alignment_;
};

}  // namespace pmemfs::pmem
