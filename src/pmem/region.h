// SPDX-License-Identifier: BSD-3-Clause
// Region: the persistent bytes pmemfs lives in, and the only way to make them durable.
//
// Every store that metadata or data code makes into the region is followed by a Flush of
// the range and, at each ordering point, a Drain. Implementations:
//   Pmem2Region  (pmem2_region.h)  a devdax device or a file, mapped with libpmem2
//   DramRegion   (dram_region.h)   plain memory for unit tests
//   CrashRegion  (crash_region.h)  records flushes and fences and rebuilds the images a
//                                  power cut could leave (crash tests)
// Thread-safety: Flush/Drain may be called from any thread; the bytes themselves are
// protected by the callers (the filesystem's locks).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "common/result.h"

namespace pmemfs::pmem {

enum class Granularity : uint8_t {
  kByte,       // eADR / CXL with persistent caches: stores are durable once globally visible
  kCacheLine,  // ADR: cache lines must be flushed
  kPage,       // msync needed (a file on a non-DAX filesystem)
};
const char* GranularityName(Granularity g);

class Region {
 public:
  virtual ~Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  // True when [off, off+len) lies inside the region (overflow-safe).
  bool Contains(uint64_t off, uint64_t len) const {
    return off <= size_ && len <= size_ - off;
  }
  template <typename T>
  T* At(uint64_t off) const {
    return reinterpret_cast<T*>(base_ + off);
  }

  // Alignment of the mapping (2 MiB on a typical devdax, the page size for a file).
  virtual uint64_t alignment() const = 0;
  virtual Granularity granularity() const = 0;
  virtual bool read_only() const { return false; }

  // Starts write-back of [off, off+len) toward the media; durable only after Drain().
  virtual void Flush(uint64_t off, uint64_t len) = 0;
  // Fence: waits until every range this thread flushed is durable (CPU cache flushes are
  // ordered per CPU), and every range any thread flushed when DrainCoversAllThreads().
  virtual void Drain() = 0;
  virtual bool DrainCoversAllThreads() const { return true; }
  void Persist(uint64_t off, uint64_t len) {
    Flush(off, len);
    Drain();
  }
  // Copies `len` bytes from `src` to `off` and flushes them (non-temporal stores where the
  // platform has them). Not drained.
  virtual void CopyFlush(uint64_t off, const void* src, uint64_t len) {
    std::memcpy(base_ + off, src, len);
    Flush(off, len);
  }
  // Zeroes [off, off+len) and flushes it. Not drained.
  virtual void ZeroFlush(uint64_t off, uint64_t len) {
    std::memset(base_ + off, 0, len);
    Flush(off, len);
  }

  // Maps [off, off+len) into the page tables ahead of its first use, so that no request
  // pays a first-touch fault there (MADV_POPULATE_WRITE, or _READ on a read-only region,
  // then a load per page for hypervisors that shadow page tables).
  // Nothing to do for memory-only regions.
  virtual Status Prefault(uint64_t off, uint64_t len) {
    (void)off, (void)len;
    return Ok();
  }

  // The absolute path of the device or file, or "" for memory-only regions.
  virtual std::string path() const { return ""; }
  // A short human description ("/dev/dax0.0 (devdax, cache-line)").
  virtual std::string Describe() const = 0;

 protected:
  Region() = default;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace pmemfs::pmem
