// libpmemfs: the client side of the direct-mapping protocol (src/common/lease_protocol.h).
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "common/lease_protocol.h"

namespace {

thread_local char g_error[256];

void SetError(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_error, sizeof(g_error), fmt, ap);
  va_end(ap);
}

struct Mapping {
  char* addr = nullptr;
  size_t len = 0;
  int lease_fd = -1;  // private duplicate: the lease lives with it
  int region_fd = -1;
  pmem2_source* src = nullptr;
  pmem2_vm_reservation* rsv = nullptr;
  std::vector<pmem2_map*> maps;

  ~Mapping() {
    for (pmem2_map*& m : maps) pmem2_map_delete(&m);
    if (rsv) pmem2_vm_reservation_delete(&rsv);
    if (src) pmem2_source_delete(&src);
    if (region_fd >= 0) close(region_fd);
    if (lease_fd >= 0) close(lease_fd);
  }
};

std::mutex g_mu;
std::vector<std::unique_ptr<Mapping>> g_maps;  // GUARDED_BY(g_mu)
// Fetched from the first mapping; every mapping of the process uses the same CPU
// instructions for a given granularity.
pmem2_persist_fn g_persist = nullptr;
pmem2_flush_fn g_flush = nullptr;
pmem2_drain_fn g_drain = nullptr;

// Takes the lease and reads every page of the extent list.
bool TakeLease(int fd, pmemfs_lease_reply* head, std::vector<pmemfs_lease_extent>* extents) {
  for (uint64_t first = 0;;) {
    auto reply = std::make_unique<pmemfs_lease_reply>();
    std::memset(reply.get(), 0, sizeof(*reply));
    auto* req = reinterpret_cast<pmemfs_lease_req*>(reply.get());
    req->version = PMEMFS_LEASE_VERSION;
    req->first_extent = first;
    if (ioctl(fd, PMEMFS_IOC_LEASE, reply.get()) != 0) {
      int err = errno;
      SetError(err == ENOTTY   ? "not a pmemfs file"
               : err == EINVAL ? "the file has no immutable extents (setfattr -n user.pmemfs.immutable_extents -v 1)"
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

}  // namespace

extern "C" {

void* pmemfs_map(int fd, size_t* len) {
  auto m = std::make_unique<Mapping>();
  m->lease_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (m->lease_fd < 0) {
    SetError("dup: %s", std::strerror(errno));
    return nullptr;
  }
  pmemfs_lease_reply head;
  std::vector<pmemfs_lease_extent> extents;
  if (!TakeLease(m->lease_fd, &head, &extents)) return nullptr;
  head.region_path[sizeof(head.region_path) - 1] = '\0';

  m->region_fd = open(head.region_path, O_RDWR | O_CLOEXEC);
  if (m->region_fd < 0) {
    int err = errno;
    SetError("cannot open the region %s: %s", head.region_path, std::strerror(err));
    errno = err;
    return nullptr;
  }
  uint8_t uuid[16];
  if (pread(m->region_fd, uuid, sizeof(uuid), PMEMFS_SB_UUID_OFFSET) != sizeof(uuid) ||
      std::memcmp(uuid, head.uuid, sizeof(uuid)) != 0) {
    SetError("%s does not hold the filesystem this file is on", head.region_path);
    errno = ESTALE;
    return nullptr;
  }

  const size_t align = head.align ? head.align : 4096;
  m->len = (head.file_size + align - 1) / align * align;
  if (m->len == 0) {
    SetError("empty file");
    errno = EINVAL;
    return nullptr;
  }
  int rc = pmem2_source_from_fd(&m->src, m->region_fd);
  // libpmem2 places reservations on 2 MiB boundaries (its mapping alignment) and sizes them
  // in 2 MiB units; a larger extent alignment (1 GiB) is honoured by probing for a free
  // range of len + align and reserving at its aligned start.
  constexpr size_t kPmem2Align = 2u << 20;
  const size_t rsv_align = std::max(align, kPmem2Align);
  const size_t rsv_len = (m->len + kPmem2Align - 1) / kPmem2Align * kPmem2Align;
  void* probe = rc ? MAP_FAILED : mmap(nullptr, rsv_len + rsv_align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe != MAP_FAILED) {
    uintptr_t a = (reinterpret_cast<uintptr_t>(probe) + rsv_align - 1) & ~(uintptr_t{rsv_align} - 1);
    munmap(probe, rsv_len + rsv_align);
    rc = pmem2_vm_reservation_new(&m->rsv, reinterpret_cast<void*>(a), rsv_len);
  } else if (!rc) {
    rc = -ENOMEM;
  }
  pmem2_config* cfg = nullptr;
  if (!rc) rc = pmem2_config_new(&cfg);
  if (!rc) rc = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
  for (size_t i = 0; !rc && i < extents.size(); ++i) {
    const pmemfs_lease_extent& e = extents[i];
    if (e.file_off >= m->len) break;
    size_t n = std::min<uint64_t>(e.len, m->len - e.file_off);
    rc = pmem2_config_set_offset(cfg, e.region_off);
    if (!rc) rc = pmem2_config_set_length(cfg, n);
    if (!rc) rc = pmem2_config_set_vm_reservation(cfg, m->rsv, e.file_off);
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
  std::lock_guard lk(g_mu);
  if (!g_persist && !m->maps.empty()) {
    g_persist = pmem2_get_persist_fn(m->maps[0]);
    g_flush = pmem2_get_flush_fn(m->maps[0]);
    g_drain = pmem2_get_drain_fn(m->maps[0]);
  }
  m->addr = static_cast<char*>(pmem2_vm_reservation_get_address(m->rsv));
  if (len) *len = m->len;
  void* addr = m->addr;
  g_maps.push_back(std::move(m));
  return addr;
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
