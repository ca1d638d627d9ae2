// SPDX-License-Identifier: BSD-3-Clause
// Pmem2Region: a devdax character device or a regular file mapped whole with libpmem2.
// The file descriptor holds an exclusive flock for the region's lifetime, so that no two
// daemons (or a daemon and mkfs/fsck) ever write one region at once.
//
// Device-dax safety: after open, the descriptor is used only for flock, fstat and mmap
// (through libpmem2); every byte is reached through the mapping. The device's rules
// (src/common/devdax.h) are applied here, in Open, for a real device-dax and for the
// PMEMFS_TEST_DEVDAX emulation alike: the mapping's offset and length are checked against
// the alignment, the emulation reports its alignment and cache-line granularity, and page
// granularity (msync) is refused on a device-dax. tests/audit/region_syscalls.sh checks
// with strace that no read/write/fallocate/ftruncate/fsync ever names a region.
#pragma once

#include <memory>
#include <string>

#include "common/devdax.h"
#include "common/result.h"
#include "pmem/region.h"

struct pmem2_map;  // libpmem2, seen only by pmem2_region.cc

namespace pmemfs::pmem {

struct OpenOptions {
  bool read_only = false;
  bool lock = true;  // take the exclusive lock (EBUSY when another holder exists)
};

class Pmem2Region final : public Region {
 public:
  static Result<std::unique_ptr<Pmem2Region>> Open(const std::string& path, OpenOptions opts);
  ~Pmem2Region() override;

  uint64_t alignment() const override { return alignment_; }
  Granularity granularity() const override { return granularity_; }
  bool read_only() const override { return read_only_; }
  void Flush(uint64_t off, uint64_t len) override;
  void Drain() override;
  bool DrainCoversAllThreads() const override { return granularity_ == Granularity::kPage; }
  Status Prefault(uint64_t off, uint64_t len) override;
  void CopyFlush(uint64_t off, const void* src, uint64_t len) override;
  void ZeroFlush(uint64_t off, uint64_t len) override;
  std::string Describe() const override;
  std::string path() const override { return path_; }

  // A device-dax, real or emulated (PMEMFS_TEST_DEVDAX).
  bool is_devdax() const { return devdax_; }
  bool is_emulated_devdax() const { return emulated_; }

 private:
  Pmem2Region() = default;

  std::string path_;
  int fd_ = -1;
  bool devdax_ = false;
  bool emulated_ = false;
  bool read_only_ = false;
  uint64_t alignment_ = 4096;
  Granularity granularity_ = Granularity::kPage;
  ::pmem2_map* map_ = nullptr;
  // Fetched once for the mapping's granularity.
  void (*flush_)(const void*, size_t) = nullptr;
  void (*drain_)() = nullptr;
  void* (*memcpy_)(void*, const void*, size_t, unsigned) = nullptr;
  void* (*memset_)(void*, int, size_t, unsigned) = nullptr;
};

// OK when [off, off+len) may be mapped under `rules`; otherwise logs the numbers and returns
// EINVAL with the rule (devdax::kMapRule).
Status CheckMap(const devdax::Rules& rules, uint64_t off, uint64_t len, const std::string& path);

// OK when the region at `path` may be created, extended or allocated as a file (mkfs
// --size): not on a device-dax, real (a character device) or emulated (PMEMFS_TEST_DEVDAX),
// which has a fixed size and no ftruncate or fallocate: EINVAL naming devdax::kFileOpRule.
Status CheckFileOpsAllowed(const std::string& path);

}  // namespace pmemfs::pmem
