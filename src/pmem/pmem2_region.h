// Pmem2Region: a devdax character device or a regular file mapped whole with libpmem2.
// The file descriptor holds an exclusive flock for the region's lifetime, so that no two
// daemons (or a daemon and mkfs/fsck) ever write one region at once.
#pragma once

#include <memory>
#include <string>

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
  void CopyFlush(uint64_t off, const void* src, uint64_t len) override;
  void ZeroFlush(uint64_t off, uint64_t len) override;
  std::string Describe() const override;
  std::string path() const override { return path_; }

  bool is_devdax() const { return devdax_; }

 private:
  Pmem2Region() = default;

  std::string path_;
  int fd_ = -1;
  bool devdax_ = false;
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

// Creates (or extends) a regular file of `size` bytes. EEXIST-free: an existing smaller file
// is extended, a larger one left alone. Unless `sparse`, the file's space is allocated, so
// that a full filesystem under it fails here and not as SIGBUS on a store in the daemon, and
// the first store to a block pays no allocation. A file created here is removed on failure.
Status CreateRegionFile(const std::string& path, uint64_t size, bool sparse);

}  // namespace pmemfs::pmem
