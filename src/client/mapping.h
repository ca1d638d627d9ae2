// SPDX-License-Identifier: BSD-3-Clause
// libpmemfs internals (not installed): one direct mapping of a flagged file, shared by
// the mapping API (pmemfs_client.cc) and the read/write path (file_io.cc).
#pragma once

#include <libpmem2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace pmemfs::client {

// The file's bytes at consecutive addresses: one pmem2 mapping per physically contiguous
// run of extents, inside one reservation aligned to the file's alignment.
struct Mapping {
  char* addr = nullptr;
  size_t len = 0;        // file_size rounded up to the file's alignment
  uint64_t file_size = 0;  // frozen while the lease is held (the map cannot change)
  int prot = 0;          // PROT_READ, or PROT_READ | PROT_WRITE
  uint32_t access = 0;   // the lease reply's `access` (PMEMFS_LEASE_*)
  int lease_fd = -1;     // a private duplicate holding the lease, or -1 (the caller's own)
  int region_fd = -1;
  pmem2_source* src = nullptr;
  pmem2_vm_reservation* rsv = nullptr;
  std::vector<pmem2_map*> maps;
  // libpmem2's functions for the store granularity of the region (from the first map):
  // every map of one region has the same.
  pmem2_granularity granularity = PMEM2_GRANULARITY_PAGE;
  pmem2_memcpy_fn memcpy_fn = nullptr;
  pmem2_persist_fn persist_fn = nullptr;
  pmem2_flush_fn flush_fn = nullptr;
  pmem2_drain_fn drain_fn = nullptr;

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();
};

// How MapFile holds the lease.
enum class LeaseHolder {
  kPrivateDup,  // a close-on-exec duplicate of `fd`: the mapping outlives the caller's descriptor
  kDescriptor,  // `fd` itself: the lease ends with the open file description
};

// Maps the whole file open on `fd`. `prot`: PROT_READ or PROT_READ|PROT_WRITE exactly, or
// -1 for the most the lease allows; `lease_flags`: the lease request's flags
// (PMEMFS_LEASE_DIRECT_ONLY: EBADFD for an open file that uses the page cache). nullptr
// with errno and the thread's error message (pmemfs_errormsg) set on failure; the errors
// are pmemfs_map_prot's (libpmemfs.h).
std::unique_ptr<Mapping> MapFile(int fd, int prot, LeaseHolder holder, uint32_t lease_flags);

// Sets the thread's error message (pmemfs_errormsg).
void SetError(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace pmemfs::client
