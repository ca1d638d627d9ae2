// SPDX-License-Identifier: BSD-3-Clause
// libpmemfs: the client side of the direct-mapping protocol (src/common/lease_protocol.h).
//
// The region is reached only through mappings (open, fstat, mmap, close): the same code
// serves a device-dax, which supports nothing else, and every mapping's offset and length
// is a multiple of the region's mapping alignment (src/common/devdax.h, which also holds
// the PMEMFS_TEST_DEVDAX emulation).
//
// A mapping is one address range, reserved with libpmem2 (pmem2_vm_reservation) at the
// file's alignment, holding one pmem2 mapping per extent of the file, placed at the
// extent's file offset. libpmem2 picks MAP_SYNC on fsdax and devdax where it applies and
// gives the flush/drain functions for the mapping's store granularity (honouring
// PMEM2_FORCE_GRANULARITY); they are fetched once, from the first mapping.
#include "client/libpmemfs.h"

#include <errno.h>
#include <fcntl.h>
#include <libpmem2.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/mapping.h"
#include "common/devdax.h"
#include "common/lease_protocol.h"

namespace pmemfs::client {

namespace {
thread_local char g_error[512];
}  // namespace

void SetError(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_error, sizeof(g_error), fmt, ap);
  va_end(ap);
}

Mapping::~Mapping() {
  for (pmem2_map*& m : maps) pmem2_map_delete(&m);
  if (rsv) pmem2_vm_reservation_delete(&rsv);
  if (src) pmem2_source_delete(&src);
  if (region_fd >= 0) close(region_fd);
  if (lease_fd >= 0) close(lease_fd);
}

namespace {

std::mutex g_mu;
std::vector<std::unique_ptr<Mapping>> g_maps;  // GUARDED_BY(g_mu)
// Fetched from the first mapping; every mapping of the process uses the same CPU
// instructions for a given granularity.
pmem2_persist_fn g_persist = nullptr;
pmem2_flush_fn g_flush = nullptr;
pmem2_drain_fn g_drain = nullptr;

// Runs `fn` (MapFile's work) on a short-lived thread with its own working
// directory (unshare(CLONE_FS)): pmem2_map_new looks the region up in sysfs (libndctl)
// with fchdir() there and back, and in the caller's thread that would move the working
// directory of every thread of the process meanwhile (another thread's open("file") then
// fails with ENOENT). Inline when no thread can be made.
template <typename Fn>
void WithPrivateCwd(Fn&& fn) {
  struct Call {
    Fn* fn;
    static void* Run(void* arg) {
      unshare(CLONE_FS);  // fails only without memory: the fchdir then races as before
      (*static_cast<Call*>(arg)->fn)();
      return nullptr;
    }
  } call{&fn};
  // Signals stay with the caller's threads: the helper blocks them all.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  const bool threaded = pthread_create(&t, nullptr, &Call::Run, &call) == 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (threaded) pthread_join(t, nullptr);
  else fn();
}

// Takes the lease and reads every page of the extent list.
bool TakeLease(int fd, uint32_t flags, pmemfs_lease_reply* head, std::vector<pmemfs_lease_extent>* extents) {
  for (uint64_t first = 0;;) {
    auto reply = std::make_unique<pmemfs_lease_reply>();
    std::memset(reply.get(), 0, sizeof(*reply));
    auto* req = reinterpret_cast<pmemfs_lease_req*>(reply.get());
    req->version = PMEMFS_LEASE_VERSION;
    req->flags = flags;
    req->first_extent = first;
    if (ioctl(fd, PMEMFS_IOC_LEASE, reply.get()) != 0) {
      int err = errno;
      SetError(err == ENOTTY   ? "not a pmemfs file"
               : err == EINVAL ? "the file has no immutable extents (setfattr -n user.pmemfs.immutable_extents -v 1)"
               : err == EBADFD ? "opened before the flag was set: the kernel's page cache serves this descriptor"
                               : "mapping lease refused: %s",
               std::strerror(err));
      errno = err;
      return false;
    }
    if (first == 0) *head = *reply;
    extents->insert(extents->end(), reply->extents, reply->extents + reply->count);
    first += reply->count;
    if (first >= reply->total_extents || reply->count == 0) return true;
  }
}

int Pmem2Errno(int rc) { return rc < 0 && rc > -4096 ? -rc : EINVAL; }

// Opens the region the daemon named with the caller's own credentials (its permissions are
// the gate), for writing only when `write`; learns the device's rules (src/common/devdax.h);
// and checks that it holds the filesystem the daemon serves: the uuid is read through a
// read-only mapping of the region's first alignment unit (a device-dax cannot be read(2)).
bool OpenRegion(const pmemfs_lease_reply& head, bool write, Mapping* m, pmemfs::devdax::Rules* rules) {
  m->region_fd = open(head.region_path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (m->region_fd < 0) {
    int err = errno;
    SetError("cannot open the region %s: %s", head.region_path, std::strerror(err));
    errno = err;
    return false;
  }
  struct stat st {};
  size_t pmem2_align = 0;
  int rc = fstat(m->region_fd, &st) != 0 ? -errno : 0;
  if (!rc) rc = pmem2_source_from_fd(&m->src, m->region_fd);
  if (!rc) rc = pmem2_source_alignment(m->src, &pmem2_align);
  if (rc) {
    SetError("%s: %s", head.region_path, pmem2_errormsg());
    errno = Pmem2Errno(rc);
    return false;
  }
  auto r = pmemfs::devdax::RulesFor(S_ISCHR(st.st_mode), pmem2_align);
  pmemfs::Status prepared = r.ok() ? pmemfs::devdax::PrepareGranularity(*r) : pmemfs::Status(r.error());
  if (!prepared.ok()) {
    SetError("%s", prepared.error().Message().c_str());
    errno = prepared.code();
    return false;
  }
  *rules = *r;

  pmem2_config* cfg = nullptr;
  pmem2_map* sb = nullptr;
  rc = pmem2_config_new(&cfg);
  if (!rc) rc = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
  if (!rc) rc = pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
  if (!rc) rc = pmem2_config_set_offset(cfg, 0);
  if (!rc) rc = pmem2_config_set_length(cfg, rules->align);
  if (!rc) rc = pmem2_map_new(&sb, cfg, m->src);
  if (cfg) pmem2_config_delete(&cfg);
  if (rc) {
    SetError("mapping the superblock of %s: %s", head.region_path, pmem2_errormsg());
    errno = Pmem2Errno(rc);
    return false;
  }
  bool same = std::memcmp(static_cast<const char*>(pmem2_map_get_address(sb)) + PMEMFS_SB_UUID_OFFSET, head.uuid,
                          sizeof(head.uuid)) == 0;
  pmem2_map_delete(&sb);
  if (!same) {
    SetError("%s does not hold the filesystem this file is on", head.region_path);
    errno = ESTALE;
    return false;
  }
  return true;
}

// The file's extents below `len` as maximal runs (logically and physically contiguous
// extents merged), each clipped to `len`: an alignment unit may span two extents, but a
// mapping must be one run at multiples of the region's alignment.
std::vector<pmemfs_lease_extent> Runs(const std::vector<pmemfs_lease_extent>& extents, uint64_t len) {
  std::vector<pmemfs_lease_extent> runs;
  for (const pmemfs_lease_extent& e : extents) {
    if (e.file_off >= len) break;
    uint64_t n = std::min<uint64_t>(e.len, len - e.file_off);
    if (!runs.empty()) {
      pmemfs_lease_extent& last = runs.back();
      if (last.file_off + last.len == e.file_off && last.region_off + last.len == e.region_off) {
        last.len += n;
        continue;
      }
    }
    runs.push_back({e.file_off, e.region_off, n});
  }
  return runs;
}

}  // namespace

namespace {

std::unique_ptr<Mapping> MapFileHere(int fd, int prot, LeaseHolder holder, uint32_t lease_flags) {
  // What mmap(2) requires of the descriptor, checked first as the kernel does.
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) {
    SetError("fcntl: %s", std::strerror(errno));
    return nullptr;
  }
  int accmode = fl & O_ACCMODE;
  if (accmode == O_WRONLY || (prot != -1 && (prot & PROT_WRITE) && accmode != O_RDWR)) {
    SetError(accmode == O_WRONLY ? "a mapping needs a descriptor open for reading"
                                 : "a writable mapping needs a descriptor open for reading and writing");
    errno = EACCES;
    return nullptr;
  }
  auto m = std::make_unique<Mapping>();
  if (holder == LeaseHolder::kPrivateDup) {
    m->lease_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (m->lease_fd < 0) {
      SetError("dup: %s", std::strerror(errno));
      return nullptr;
    }
  }
  pmemfs_lease_reply head;
  std::vector<pmemfs_lease_extent> extents;
  if (!TakeLease(m->lease_fd >= 0 ? m->lease_fd : fd, lease_flags, &head, &extents)) return nullptr;
  head.region_path[sizeof(head.region_path) - 1] = '\0';
  const bool may_write = head.access & PMEMFS_LEASE_WRITE;
  if (prot != -1 && (prot & PROT_WRITE) && !may_write) {
    SetError("the lease allows reading only (a read-only filesystem, or no write access to the region)");
    errno = EACCES;
    return nullptr;
  }
  const bool write = prot == -1 ? may_write : (prot & PROT_WRITE) != 0;
  m->prot = write ? PROT_READ | PROT_WRITE : PROT_READ;
  m->access = head.access;
  pmemfs::devdax::Rules rules;
  if (!OpenRegion(head, write, m.get(), &rules)) return nullptr;

  const size_t align = head.align ? head.align : 4096;
  m->file_size = head.file_size;
  m->len = (head.file_size + align - 1) / align * align;
  if (m->len == 0) {
    SetError("empty file");
    errno = EINVAL;
    return nullptr;
  }
  std::vector<pmemfs_lease_extent> runs = Runs(extents, m->len);
  for (const pmemfs_lease_extent& r : runs) {
    if (!pmemfs::devdax::MapAllowed(rules, r.region_off, r.len)) {
      SetError("%s: file offset %llu maps region bytes [%llu, +%llu), not multiples of the region's mapping alignment "
               "%llu%s (%s); set the flag again with -v 1",
               head.region_path, (unsigned long long)r.file_off, (unsigned long long)r.region_off,
               (unsigned long long)r.len, (unsigned long long)rules.align, rules.emulated ? " (PMEMFS_TEST_DEVDAX)" : "",
               pmemfs::devdax::kMapRule);
      errno = EINVAL;
      return nullptr;
    }
  }
  // libpmem2 wants reservations at multiples of its own mapping alignment (2 MiB here);
  // the address must also be a multiple of the file's and the region's alignment (1 GiB
  // is honoured by probing for a free range of len + align and reserving at its aligned
  // start). The reservation's length is a multiple of all of them.
  constexpr size_t kPmem2Align = 2u << 20;
  const size_t rsv_align = std::max({align, kPmem2Align, static_cast<size_t>(rules.align)});
  const size_t rsv_len = (m->len + rsv_align - 1) / rsv_align * rsv_align;
  int rc = 0;
  void* probe = mmap(nullptr, rsv_len + rsv_align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe != MAP_FAILED) {
    uintptr_t a = (reinterpret_cast<uintptr_t>(probe) + rsv_align - 1) & ~(uintptr_t{rsv_align} - 1);
    munmap(probe, rsv_len + rsv_align);
    rc = pmem2_vm_reservation_new(&m->rsv, reinterpret_cast<void*>(a), rsv_len);
  } else {
    rc = -ENOMEM;
  }
  pmem2_config* cfg = nullptr;
  if (!rc) rc = pmem2_config_new(&cfg);
  if (!rc) rc = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
  if (!rc && !write) rc = pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
  for (size_t i = 0; !rc && i < runs.size(); ++i) {
    const pmemfs_lease_extent& r = runs[i];
    rc = pmem2_config_set_offset(cfg, r.region_off);
    if (!rc) rc = pmem2_config_set_length(cfg, r.len);
    if (!rc) rc = pmem2_config_set_vm_reservation(cfg, m->rsv, r.file_off);
    pmem2_map* map = nullptr;
    if (!rc) rc = pmem2_map_new(&map, cfg, m->src);
    if (!rc) m->maps.push_back(map);
  }
  if (cfg) pmem2_config_delete(&cfg);
  if (rc) {
    SetError("mapping the region: %s (libpmem2 error %d)", pmem2_errormsg(), rc);
    errno = Pmem2Errno(rc);
    return nullptr;
  }
  pmem2_map* first = m->maps.front();  // runs cover [0, len): at least one
  m->granularity = pmem2_map_get_store_granularity(first);
  m->memcpy_fn = pmem2_get_memcpy_fn(first);
  m->persist_fn = pmem2_get_persist_fn(first);
  m->flush_fn = pmem2_get_flush_fn(first);
  m->drain_fn = pmem2_get_drain_fn(first);
  m->addr = static_cast<char*>(pmem2_vm_reservation_get_address(m->rsv));
  if (holder == LeaseHolder::kDescriptor) {
    // The maps need neither: a descriptor examined for read/write must not cost the
    // process another descriptor number (open(2) would then return other numbers).
    pmem2_source_delete(&m->src);
    close(m->region_fd);
    m->region_fd = -1;
  }
  return m;
}

}  // namespace

std::unique_ptr<Mapping> MapFile(int fd, int prot, LeaseHolder holder, uint32_t lease_flags) {
  std::unique_ptr<Mapping> m;
  int err = 0;
  char msg[sizeof g_error] = "";
  WithPrivateCwd([&] {
    m = MapFileHere(fd, prot, holder, lease_flags);
    err = errno;
    std::memcpy(msg, g_error, sizeof msg);  // the error message is per thread
  });
  if (!m) {
    std::memcpy(g_error, msg, sizeof msg);
    errno = err;
  }
  return m;
}

namespace {

// prot: PROT_READ or PROT_READ|PROT_WRITE; -1: the most the lease allows.
void* Map(int fd, size_t* len, int prot) {
  std::unique_ptr<Mapping> m = MapFile(fd, prot, LeaseHolder::kPrivateDup, 0);
  if (!m) return nullptr;
  std::lock_guard lk(g_mu);
  if (!g_persist) {
    g_persist = m->persist_fn;
    g_flush = m->flush_fn;
    g_drain = m->drain_fn;
  }
  if (len) *len = m->len;
  void* addr = m->addr;
  g_maps.push_back(std::move(m));
  return addr;
}

}  // namespace
}  // namespace pmemfs::client

using namespace pmemfs::client;  // NOLINT: the C entry points below use the internals above

extern "C" {

void* pmemfs_map(int fd, size_t* len) { return Map(fd, len, -1); }

void* pmemfs_map_prot(int fd, size_t* len, int prot) {
  if (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE)) {
    SetError("prot must be PROT_READ or PROT_READ|PROT_WRITE");
    errno = EINVAL;
    return nullptr;
  }
  return Map(fd, len, prot);
}

int pmemfs_mapping_prot(const void* addr) {
  const char* p = static_cast<const char*>(addr);
  std::lock_guard lk(g_mu);
  for (const auto& m : g_maps) {
    if (p >= m->addr && p < m->addr + m->len) return m->prot;
  }
  SetError("not a pmemfs mapping");
  errno = EINVAL;
  return -1;
}

int pmemfs_unmap(void* addr) {
  std::unique_ptr<Mapping> gone;
  {
    std::lock_guard lk(g_mu);
    for (auto it = g_maps.begin(); it != g_maps.end(); ++it) {
      if ((*it)->addr == addr) {
        gone = std::move(*it);
        g_maps.erase(it);
        break;
      }
    }
  }
  if (!gone) {
    SetError("not a pmemfs mapping");
    errno = EINVAL;
    return -1;
  }
  return 0;  // ~Mapping unmaps, releases the reservation and closes the lease
}

void* pmemfs_find(const void* addr, size_t len, size_t* map_len) {
  const char* p = static_cast<const char*>(addr);
  std::lock_guard lk(g_mu);
  for (const auto& m : g_maps) {
    if (p >= m->addr && len <= m->len && p - m->addr <= static_cast<ptrdiff_t>(m->len - len)) {
      if (map_len) *map_len = m->len;
      return m->addr;
    }
  }
  return nullptr;
}

void pmemfs_persist(const void* addr, size_t len) {
  if (g_persist) g_persist(addr, len);
}
void pmemfs_flush(const void* addr, size_t len) {
  if (g_flush) g_flush(addr, len);
}
void pmemfs_drain(void) {
  if (g_drain) g_drain();
}

const char* pmemfs_errormsg(void) { return g_error; }

}  // extern "C"
