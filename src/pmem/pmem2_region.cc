// SPDX-License-Identifier: BSD-3-Clause
#include "pmem/pmem2_region.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/devdax.h"
#include "pmem/fault.h"

namespace pmemfs::pmem {
namespace {

// libpmem2 errors become errno exactly once, here.
Error FromPmem2(int ret, const char* context) {
  // libpmem2 returns -errno for system errors and its own codes (<= -100000) otherwise.
  int e = ret < 0 && ret > -100000 ? -ret : (ret == PMEM2_E_GRANULARITY_NOT_SUPPORTED ? ENOTSUP : EINVAL);
  spdlog::debug("{}: {}", context, pmem2_errormsg());
  return Err(e, context);
}

Granularity ToGranularity(pmem2_granularity g) {
  switch (g) {
    case PMEM2_GRANULARITY_BYTE: return Granularity::kByte;
    case PMEM2_GRANULARITY_CACHE_LINE: return Granularity::kCacheLine;
    default: return Granularity::kPage;
  }
}

}  // namespace

Status CheckMap(const devdax::Rules& rules, uint64_t off, uint64_t len, const std::string& path) {
  if (devdax::MapAllowed(rules, off, len)) return Ok();
  spdlog::error("{}: mapping [{}, +{}) refused: {} ({} bytes{})", path, off, len, devdax::kMapRule, rules.align,
                rules.emulated ? ", PMEMFS_TEST_DEVDAX" : "");
  return Err(EINVAL, devdax::kMapRule);
}

Result<std::unique_ptr<Pmem2Region>> Pmem2Region::Open(const std::string& path, OpenOptions opts) {
  std::unique_ptr<Pmem2Region> r(new Pmem2Region());
  char abs[PATH_MAX];
  r->path_ = realpath(path.c_str(), abs) ? abs : path;
  r->read_only_ = opts.read_only;
  r->fd_ = ::open(path.c_str(), (opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (r->fd_ < 0) return Err(errno, "open region");
  struct stat st {};
  if (fstat(r->fd_, &st) != 0) return Err(errno, "stat region");
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) return Err(ENODEV, "region is not a file or devdax");
  if (opts.lock && flock(r->fd_, (opts.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    return Err(errno == EWOULDBLOCK ? EBUSY : errno, "region is in use by another pmemfs or tool");
  }

  pmem2_source* src = nullptr;
  if (int ret = pmem2_source_from_fd(&src, r->fd_); ret != 0) return FromPmem2(ret, "pmem2 source");
  size_t size = 0, align = 0;
  int ret = pmem2_source_size(src, &size);
  if (ret == 0) ret = pmem2_source_alignment(src, &align);
  if (ret != 0) {
    pmem2_source_delete(&src);
    return FromPmem2(ret, "pmem2 source");
  }
  // The device's rules (a real device-dax, or the PMEMFS_TEST_DEVDAX emulation): the whole
  // region is one mapping, so its size must be a multiple of the alignment, as a real
  // device-dax's always is.
  auto rules = devdax::RulesFor(S_ISCHR(st.st_mode), align);
  Status allowed = rules.ok() ? devdax::PrepareGranularity(*rules) : Status(rules.error());
  if (allowed.ok() && size == 0) allowed = Err(EINVAL, "region is empty");
  if (allowed.ok()) allowed = CheckMap(*rules, 0, size, r->path_);
  if (!allowed.ok()) {
    pmem2_source_delete(&src);
    return allowed.error();
  }
  pmem2_config* cfg = nullptr;
  ret = pmem2_config_new(&cfg);
  // PAGE is the weakest requirement: libpmem2 then gives the strongest the media offers.
  if (ret == 0) ret = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
  if (ret == 0 && opts.read_only) ret = pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
  if (ret == 0) ret = pmem2_map_new(&r->map_, cfg, src);
  if (cfg) pmem2_config_delete(&cfg);
  pmem2_source_delete(&src);
  if (ret != 0) return FromPmem2(ret, "map region");

  r->base_ = static_cast<uint8_t*>(pmem2_map_get_address(r->map_));
  r->size_ = pmem2_map_get_size(r->map_);
  r->alignment_ = rules->align;
  r->devdax_ = rules->devdax;
  r->emulated_ = rules->emulated;
  r->granularity_ = ToGranularity(pmem2_map_get_store_granularity(r->map_));
  // A device-dax has no msync: page granularity there would fail at every fence.
  if (r->devdax_ && r->granularity_ == Granularity::kPage) return Err(EINVAL, devdax::kGranularityRule);
  r->flush_ = pmem2_get_flush_fn(r->map_);
  r->drain_ = pmem2_get_drain_fn(r->map_);
  r->memcpy_ = pmem2_get_memcpy_fn(r->map_);
  r->memset_ = pmem2_get_memset_fn(r->map_);
  // SIGBUS on this mapping is survivable where the handler is installed (the daemon).
  fault::Watch(r->base_, r->size_, r->fd_, r->alignment_);
  return r;
}

Pmem2Region::~Pmem2Region() {
  if (granularity_ == Granularity::kPage) Drain();  // nothing flushed is left behind
  if (base_) fault::Unwatch(base_);
  if (map_) pmem2_map_delete(&map_);
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

// Page granularity: libpmem2's flush is one msync per call, and a journal commit flushes a
// handful of small ranges between two fences. Flush only notes the range, and Drain makes
// one msync over the span of every range noted so far, by any thread (msync writes back
// exactly the dirty pages in its range, so a wide span costs nothing more): a journal
// group's fence then also covers the data its other members wrote. msync runs under the
// lock, so that a Drain returns only once every range noted before it is durable, also
// those another thread's Drain is writing back at the time.
namespace {
class PendingPages {
 public:
  void Add(const void* p, uint64_t len) {
    auto a = reinterpret_cast<uintptr_t>(p);
    std::lock_guard lk(mu_);
    lo_ = std::min(lo_, a);
    hi_ = std::max(hi_, a + len);
  }
  void Sync() {
    std::lock_guard lk(mu_);
    if (lo_ >= hi_) return;
    static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    uintptr_t start = lo_ & ~(page - 1);
    if (msync(reinterpret_cast<void*>(start), hi_ - start, MS_SYNC) != 0)
      spdlog::error("msync of the region: {}", std::strerror(errno));
    lo_ = UINTPTR_MAX;
    hi_ = 0;
  }

 private:
  std::mutex mu_;
  uintptr_t lo_ = UINTPTR_MAX, hi_ = 0;  // GUARDED_BY(mu_)
};
PendingPages pending;  // one region per process is mapped at page granularity in practice;
                       // a second one only widens the span
}  // namespace

void Pmem2Region::Flush(uint64_t off, uint64_t len) {
  if (len == 0) return;
  if (granularity_ == Granularity::kPage) return pending.Add(base_ + off, len);
  flush_(base_ + off, len);
}

void Pmem2Region::Drain() {
  if (granularity_ == Granularity::kPage) return pending.Sync();
  drain_();
}

void Pmem2Region::CopyFlush(uint64_t off, const void* src, uint64_t len) {
  if (granularity_ == Granularity::kPage) {
    std::memcpy(base_ + off, src, len);
    return pending.Add(base_ + off, len);
  }
  memcpy_(base_ + off, src, len, PMEM2_F_MEM_NODRAIN | PMEM2_F_MEM_NONTEMPORAL);
}

void Pmem2Region::ZeroFlush(uint64_t off, uint64_t len) {
  if (granularity_ == Granularity::kPage) {
    std::memset(base_ + off, 0, len);
    return pending.Add(base_ + off, len);
  }
  memset_(base_ + off, 0, len, PMEM2_F_MEM_NODRAIN | PMEM2_F_MEM_NONTEMPORAL);
}

Status Pmem2Region::Prefault(uint64_t off, uint64_t len) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t lo = off & ~(page - 1), hi = std::min(size_, (off + len + page - 1) & ~(page - 1));
  if (lo >= hi) return Ok();
  // A fault the kernel cannot satisfy (a shrunk region file) is an error here (EFAULT),
  // never SIGBUS.
  if (madvise(base_ + lo, hi - lo, read_only_ ? MADV_POPULATE_READ : MADV_POPULATE_WRITE) != 0)
    return Err(errno, "prefault the region mapping");
  // Then one load per page: under a hypervisor that shadows the guest's page tables, a
  // page's first access in this process still costs a trip to the hypervisor after the
  // kernel has filled the page tables (measured on the development VM: the first memcpy
  // over 512 MiB of populated shmem ran at 300 MB/s, the second at 15 GB/s; after a load per
  // page, the first at full speed). On bare metal the loads cost next to nothing. Atomic
  // loads: other threads may be storing to these pages meanwhile.
  for (uint64_t o = lo; o < hi; o += page) (void)__atomic_load_n(base_ + o, __ATOMIC_RELAXED);
  return Ok();
}

std::string Pmem2Region::Describe() const {
  return path_ + " (" + (emulated_ ? "file emulating a devdax (PMEMFS_TEST_DEVDAX)" : devdax_ ? "devdax" : "file") + ", " + GranularityName(granularity_) +
         " granularity, " + std::to_string(alignment_) + "-byte alignment)";
}

Status CheckFileOpsAllowed(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) return Err(EINVAL, devdax::kFileOpRule);
  PMEMFS_ASSIGN_OR_RETURN(devdax::Rules rules, devdax::RulesFor(false, 4096));
  if (rules.devdax) return Err(EINVAL, devdax::kFileOpRule);
  return Ok();
}

}  // namespace pmemfs::pmem
