// SPDX-License-Identifier: BSD-3-Clause
// libpmemfs-preload.so: with LD_PRELOAD, an unmodified program's mmap(MAP_SHARED) of a
// pmemfs file with immutable extents is served by libpmemfs's direct mapping, and msync()
// on it persists with CPU cache flushes instead of entering the kernel.
//
// The mapping has the protection asked for: PROT_READ gives a read-only direct mapping, and
// MAP_SHARED|PROT_WRITE on a descriptor not open O_RDWR goes to the kernel, which answers
// EACCES (as it would for any file); a read-only lease (a read-only mount) with PROT_WRITE
// falls back to the kernel too.
//
// Everything else goes to the real libc functions: a file not on FUSE costs one fstatfs;
// a FUSE file that is not a flagged pmemfs file costs one ioctl more, and then falls back
// to the kernel's mmap (so does a process that cannot open the region: EACCES). fork()
// children keep their mappings and the lease (the lease descriptor is inherited); exec()
// drops both (the descriptor is close-on-exec).
//
// munmap of part of a direct mapping unmaps that part; the lease goes with the last part.
// mremap may shrink a direct mapping in place; growing or moving one fails with ENOMEM,
// as for a mapping that cannot be extended.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statfs.h>

#include <atomic>
#include <cstdarg>
#include <mutex>
#include <vector>

#include "client/libpmemfs.h"

namespace {

constexpr long kFuseSuperMagic = 0x65735546;

using MmapFn = void* (*)(void*, size_t, int, int, int, off_t);
using MunmapFn = int (*)(void*, size_t);
using MsyncFn = int (*)(void*, size_t, int);
using MremapFn = void* (*)(void*, size_t, size_t, int, ...);

template <typename Fn>
Fn Real(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}
MmapFn RealMmap() {
  static MmapFn fn = Real<MmapFn>("mmap");
  return fn;
}

// What the program sees of each direct mapping: [start, end) inside the whole-file
// mapping at `base`.
struct Range {
  char* start;
  char* end;
  void* base;
};
std::mutex g_mu;
std::vector<Range> g_ranges;  // GUARDED_BY(g_mu)

// msync's fast path: the last direct mapping this thread persisted into, valid while no
// direct mapping has been unmapped since (g_generation).
std::atomic<uint64_t> g_generation{0};
struct LastHit {
  const char* lo = nullptr;
  const char* hi = nullptr;
  uint64_t generation = ~0ull;
};
thread_local LastHit t_last;

bool IsDirect(void* addr, size_t len) {
  const char* p = static_cast<const char*>(addr);
  if (p >= t_last.lo && p + len <= t_last.hi && t_last.generation == g_generation.load(std::memory_order_acquire))
    return true;
  uint64_t generation = g_generation.load(std::memory_order_acquire);
  size_t map_len = 0;
  auto* base = static_cast<const char*>(pmemfs_find(addr, len, &map_len));
  if (!base) return false;
  t_last = {base, base + map_len, generation};
  return true;
}

void* DirectMap(size_t len, int prot, int flags, int fd, off_t off) {
  const int type = flags & MAP_TYPE;  // MAP_SHARED_VALIDATE comes with MAP_SYNC (fio, libpmem)
  if (fd < 0 || (type != MAP_SHARED && type != MAP_SHARED_VALIDATE) || (flags & MAP_FIXED) || off < 0) return nullptr;
  // A descriptor that does not allow what is asked: the kernel answers EACCES itself
  // (MAP_SHARED|PROT_WRITE needs O_RDWR, any mapping needs read access).
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (fl & O_ACCMODE) == O_WRONLY || ((prot & PROT_WRITE) && (fl & O_ACCMODE) != O_RDWR)) return nullptr;
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0 || sfs.f_type != kFuseSuperMagic) return nullptr;
  int saved = errno;
  size_t map_len = 0;
  // Read-only unless writing is asked: a stray store then faults, as with the kernel's mapping.
  void* base = pmemfs_map_prot(fd, &map_len, (prot & PROT_WRITE) ? PROT_READ | PROT_WRITE : PROT_READ);
  errno = saved;
  if (!base) return nullptr;  // not flagged, not pmemfs, or the region is not ours to open
  if (static_cast<size_t>(off) > map_len || len > map_len - off) {
    pmemfs_unmap(base);
    return nullptr;  // beyond the mappable length: the kernel decides
  }
  char* start = static_cast<char*>(base) + off;
  std::lock_guard lk(g_mu);
  g_ranges.push_back({start, start + len, base});
  return start;
}

}  // namespace

extern "C" {

void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  // Without MAP_FIXED `addr` is only a hint (libpmem passes one): the direct mapping
  // chooses its own aligned address.
  if (void* p = DirectMap(len, prot, flags, fd, off)) return p;
  return RealMmap()(addr, len, prot, flags, fd, off);
}

void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}

int munmap(void* addr, size_t len) {
  static MunmapFn real = Real<MunmapFn>("munmap");
  char* lo = static_cast<char*>(addr);
  char* hi = lo + len;
  std::vector<void*> unmap;
  {
    std::lock_guard lk(g_mu);
    std::vector<Range> keep;
    for (const Range& r : g_ranges) {
      if (hi <= r.start || lo >= r.end) {
        keep.push_back(r);
        continue;
      }
      if (r.start < lo) keep.push_back({r.start, lo, r.base});
      if (hi < r.end) keep.push_back({hi, r.end, r.base});
    }
    g_ranges.swap(keep);
    for (const Range& r : keep) {  // `keep` now holds the old table
      bool alive = false;
      for (const Range& n : g_ranges) alive |= n.base == r.base;
      bool listed = false;
      for (void* b : unmap) listed |= b == r.base;
      if (!alive && !listed) unmap.push_back(r.base);
    }
  }
  if (!unmap.empty()) g_generation.fetch_add(1, std::memory_order_acq_rel);
  int rc = real(addr, len);
  for (void* base : unmap) pmemfs_unmap(base);
  return rc;
}

int msync(void* addr, size_t len, int flags) {
  static MsyncFn real = Real<MsyncFn>("msync");
  // On a region whose store granularity is the page (a file that is not on DAX), libpmem2
  // persists with msync itself: that call must reach the kernel, for the region file.
  static thread_local bool persisting = false;
  if (!persisting && IsDirect(addr, len)) {
    persisting = true;
    pmemfs_persist(addr, len);  // MS_ASYNC too: the flush is as cheap as the request
    persisting = false;
    return 0;
  }
  return real(addr, len, flags);
}

void* mremap(void* old, size_t old_len, size_t new_len, int flags, ...) {
  static MremapFn real = Real<MremapFn>("mremap");
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  if (pmemfs_find(old, old_len, nullptr)) {
    if (new_len > old_len || (flags & MREMAP_FIXED)) {
      errno = ENOMEM;
      return MAP_FAILED;
    }
    munmap(static_cast<char*>(old) + new_len, old_len - new_len);
    return old;
  }
  return (flags & MREMAP_FIXED) ? real(old, old_len, new_len, flags, new_addr) : real(old, old_len, new_len, flags);
}

}  // extern "C"
