// SPDX-License-Identifier: BSD-3-Clause
// Region faults: a daemon that survives its region (issue 15).
//
// A load or store into the region mapping can raise SIGBUS: the region file was truncated
// under a live mount (the pages past its new end are gone), or a line of real pmem is
// poisoned (a machine-check, BUS_MCEERR_AR). By default the daemon would die and every
// client would see "Transport endpoint is not connected". With the handler installed, a
// SIGBUS inside a watched region mapping is repaired and recorded instead:
//
//   * the faulting range is replaced by anonymous zero memory (mmap MAP_FIXED), so that the
//     access completes: for a region file that shrank, everything past its new end at once;
//     otherwise the alignment unit holding the fault (a device-dax splits mappings only at
//     its alignment). Stores there reach no media; loads read zeros;
//   * a sticky record keeps the first fault (region offset, si_code, the file's size), a
//     counter counts them, and a per-thread flag tells the thread that faulted;
//   * the replaced ranges are remembered, so that bytes served from them later (a read
//     reply pointing into the region) can be refused instead of returned as zeros.
//
// What to do with a fault is the caller's: the FUSE adapter (src/fs/fuse_ops.cc) answers
// EIO to the request during which its thread faulted and stops the filesystem (read-only,
// reason logged). A SIGBUS outside every watched region goes to the previous disposition
// (by default the process dies, as before).
//
// Thread-safety: Watch/Unwatch and Install may be called from any thread; the handler and
// the queries are lock-free (atomics), async-signal-safe where the handler uses them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pmemfs::pmem::fault {

// Watches [base, base+size) (a region mapping) until Unwatch(base). `fd` is the region's
// descriptor (fstat tells whether a region file shrank; -1: none), `align` the unit a
// replacement may cover (the region's mapping alignment). Up to 8 regions at a time;
// false when the table is full (the region is then not protected).
bool Watch(void* base, uint64_t size, int fd, uint64_t align);
void Unwatch(void* base);

// Installs the SIGBUS handler (idempotent). Without it a fault kills the process.
void Install();

// True when the calling thread took a region fault since the last call; clears the flag.
bool TakeThreadFault();
// Region faults so far (all threads).
uint64_t Count();
// The first fault in words ("region offset 12582912: the region file shrank to 8388608
// bytes (SIGBUS BUS_ADRERR)"), or "" when none.
std::string Describe();
// True when [p, p+len) overlaps memory that a fault replaced with zeros.
bool Replaced(const void* p, size_t len);

}  // namespace pmemfs::pmem::fault
