// SPDX-License-Identifier: BSD-3-Clause
// CrashRegion: a DramRegion that records every Flush (with the bytes flushed) and every
// Drain, and rebuilds the images a power cut could leave behind.
//
// Model (pessimistic, as pmreorder's): a store is durable only once it has been flushed and
// a later Drain has completed. A power cut after fence k leaves the image of every range
// flushed before fence k, plus any subset of the 8-byte words flushed after fence k (pmem's
// atomic unit) -- those may or may not have reached the media. A store that is never flushed
// never reaches the image, so a missing flush shows up as lost data.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "pmem/dram_region.h"

namespace pmemfs::pmem {

class CrashRegion : public DramRegion {
 public:
  explicit CrashRegion(uint64_t size) : DramRegion(size) {}

  void Flush(uint64_t off, uint64_t len) override;
  void Drain() override;
  std::string Describe() const override { return "crash-tracing dram"; }

  // Takes the current bytes as the durable starting image and forgets the trace.
  void StartTrace();
  // True between StartTrace() and the end of the region (fault-injecting subclasses).
  bool tracing() const { return !start_.empty(); }
  // Fences recorded since StartTrace().
  size_t fences() const { return fence_ends_.size(); }
  // 8-byte words flushed after fence `k` (k == 0: after the start) and before fence k+1.
  size_t PendingWords(size_t k) const;
  // The image a power cut just after fence `k` would leave, with pending word i of that
  // epoch included when `keep(i)` is true.
  std::vector<uint8_t> Image(size_t k, const std::function<bool(size_t)>& keep) const;

 private:
  struct Flushed {
    uint64_t off;
    std::vector<uint8_t> bytes;
  };
  // Flush and Drain may come from several threads (group commit): one global order.
  std::mutex mu_;
  std::vector<uint8_t> start_;
  std::vector<Flushed> flushes_;    // GUARDED_BY(mu_) while tracing
  std::vector<size_t> fence_ends_;  // fence_ends_[k] = flushes_.size() at fence k+1. GUARDED_BY(mu_)
};

}  // namespace pmemfs::pmem
