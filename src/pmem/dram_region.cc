// SPDX-License-Identifier: BSD-3-Clause
#include "pmem/dram_region.h"

#include <sys/mman.h>

#include <new>

namespace pmemfs::pmem {

DramRegion::DramRegion(uint64_t size, uint64_t alignment) : alignment_(alignment) {
  // Anonymous mmap: zeroed, page aligned, and untouched pages cost nothing.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  base_ = static_cast<uint8_t*>(p);
  size_ = size;
}

DramRegion::~DramRegion() { munmap(base_, size_); }

const char* GranularityName(Granularity g) {
  switch (g) {
    case Granularity::kByte: return "byte";
    case Granularity::kCacheLine: return "cache-line";
    case Granularity::kPage: return "page";
  }
  return "?";
}

}  // namespace pmemfs::pmem
