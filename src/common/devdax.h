// SPDX-License-Identifier: BSD-3-Clause
// Device-dax rules, shared by the region layer (src/pmem) and libpmemfs (src/client): what a
// device-dax allows, and the test emulation that imposes the same rules on a regular file.
//
// A device-dax (/dev/daxX.Y) supports open, mmap and close, nothing else: no read, write,
// pread, pwrite, fallocate, ftruncate or fsync (not even msync), and every mapping's offset
// and length must be a multiple of the device alignment (2 MiB by default, 1 GiB possible).
// pmemfs touches a region only through mappings, so the same code serves both kinds.
//
// Test emulation: PMEMFS_TEST_DEVDAX=ALIGN (4K..1G, a power of two, e.g. "2M") makes every
// regular-file region that pmemfs, mkfs.pmemfs, fsck.pmemfs and libpmemfs open behave as a
// device-dax of alignment ALIGN: the region reports that alignment and cache-line store
// granularity (through libpmem2's own PMEM2_FORCE_GRANULARITY=CACHE_LINE, which a device-dax
// would give, with no msync), maps are refused at offsets and lengths that are not
// multiples of ALIGN, and the file operations a device-dax lacks (mkfs --size) are refused.
// It is a test knob: it changes nothing about what is durable where.
//
// Thread-safety: the functions read the environment; PrepareGranularity also writes it
// (under the emulation only, a test knob) and must not race with other setenv callers.
#pragma once

#include <cstdint>

#include "common/result.h"

namespace pmemfs::devdax {

inline constexpr const char* kEmulationEnv = "PMEMFS_TEST_DEVDAX";

// What a mapping may be: the rules of the region's device.
struct Rules {
  bool devdax = false;    // only open, mmap and close (a real device-dax, or the emulation)
  bool emulated = false;  // a regular file standing in for a device-dax (PMEMFS_TEST_DEVDAX)
  uint64_t align = 4096;  // every mapping's offset and length is a multiple of this
};

// The emulated alignment from PMEMFS_TEST_DEVDAX: 0 when unset or empty; EINVAL when it is
// not a power of two from 4K to 1G (with an optional K, M or G suffix).
Result<uint64_t> EmulatedAlignment();

// The rules of a region: `char_device` from fstat (a real device-dax), `pmem2_align` as
// libpmem2 reports it (pmem2_source_alignment). A regular file under the emulation takes
// the emulated alignment (at least `pmem2_align`); a real device keeps its own.
Result<Rules> RulesFor(bool char_device, uint64_t pmem2_align);

// The message of each rule, for errors (static storage).
inline constexpr const char* kMapRule =
    "device-dax rule: a mapping's offset and length must be multiples of the device alignment";
inline constexpr const char* kFileOpRule =
    "device-dax rule: a device-dax supports only open, mmap and close (no read, write, fallocate, ftruncate, "
    "fsync or msync); its size is fixed by ndctl create-namespace";
inline constexpr const char* kGranularityRule =
    "device-dax rule: PMEM2_FORCE_GRANULARITY=PAGE would persist with msync, which a device-dax refuses";

// True when [off, off+len) may be mapped under `r` (len > 0, both multiples of r.align).
inline bool MapAllowed(const Rules& r, uint64_t off, uint64_t len) {
  return len > 0 && off % r.align == 0 && len % r.align == 0;
}

// Under the emulation, selects cache-line granularity in libpmem2 (PMEM2_FORCE_GRANULARITY=
// CACHE_LINE unless BYTE or CACHE_LINE is already forced): what a device-dax without eADR
// gives. EINVAL (kGranularityRule) when PAGE is forced. Does nothing for other rules.
Status PrepareGranularity(const Rules& r);

}  // namespace pmemfs::devdax
