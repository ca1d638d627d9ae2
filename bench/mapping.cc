// SPDX-License-Identifier: BSD-3-Clause
// Persistent random updates per second through five paths to the same bytes (issue 5):
//   a  libpmem2 mapping the region file directly, at the flagged file's region offsets
//   b  libpmemfs: pmemfs_map + store + pmemfs_persist
//   c  plain mmap + msync of the flagged file (run this binary under the LD_PRELOAD shim)
//   d  mmap of an unflagged file through the FUSE page cache, msync per update
//   e  pwrite through the mount
//
//   mapping MODE SIZE SECONDS FILE [REGION EXTENTS_FILE]
//     SIZE 8 or 64 bytes per update; prints "MODE SIZE updates_per_second".
#include <fcntl.h>
#include <libpmem2.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "client/libpmemfs.h"

namespace {

struct Extent {
  uint64_t logical, region, length;
};

[[noreturn]] void Die(const char* what) {
  std::perror(what);
  std::exit(1);
}

template <typename Update>
double Run(double seconds, uint64_t size_bytes, size_t update, Update&& fn) {
  std::mt19937_64 rng(42);
  const uint64_t slots = size_bytes / update;
  uint64_t n = 0;
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  for (;;) {
    for (int i = 0; i < 256; ++i, ++n) fn((rng() % slots) * update, n);
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return n / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: mapping a|b|c|d|e SIZE SECONDS FILE [REGION EXTENTS_FILE]\n");
    return 64;
  }
  const char mode = argv[1][0];
  const size_t update = std::strtoul(argv[2], nullptr, 0);
  const double seconds = std::strtod(argv[3], nullptr);
  const char* path = argv[4];
  int fd = open(path, O_RDWR);
  if (fd < 0) Die(path);
  struct stat st;
  fstat(fd, &st);
  const uint64_t size = st.st_size;
  char payload[64];
  std::memset(payload, 0x5a, sizeof(payload));
  double rate = 0;

  if (mode == 'a') {
    if (argc < 7) return 64;
    std::vector<Extent> ext;
    std::ifstream in(argv[6]);
    for (Extent e; in >> e.logical >> e.region >> e.length;) {
      std::string flags;
      in >> flags;
      ext.push_back(e);
    }
    int rfd = open(argv[5], O_RDWR);
    if (rfd < 0) Die(argv[5]);
    pmem2_source* src;
    pmem2_config* cfg;
    pmem2_map* map;
    if (pmem2_source_from_fd(&src, rfd) || pmem2_config_new(&cfg) ||
        pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE) || pmem2_map_new(&map, cfg, src)) {
      std::fprintf(stderr, "pmem2: %s\n", pmem2_errormsg());
      return 1;
    }
    auto* base = static_cast<char*>(pmem2_map_get_address(map));
    pmem2_persist_fn persist = pmem2_get_persist_fn(map);
    // File offset -> region address, as the direct mapping lays it out (one lookup per update,
    // the same work a program does with a region-level mapping and its own extent table).
    rate = Run(seconds, size, update, [&](uint64_t off, uint64_t) {
      size_t k = 0;
      while (off >= ext[k].logical + ext[k].length) ++k;
      char* p = base + ext[k].region + (off - ext[k].logical);
      std::memcpy(p, payload, update);
      persist(p, update);
    });
  } else if (mode == 'b') {
    size_t len;
    auto* p = static_cast<char*>(pmemfs_map(fd, &len));
    if (!p) return std::fprintf(stderr, "pmemfs_map: %s\n", pmemfs_errormsg()), 1;
    rate = Run(seconds, size, update, [&](uint64_t off, uint64_t) {
      std::memcpy(p + off, payload, update);
      pmemfs_persist(p + off, update);
    });
  } else if (mode == 'c' || mode == 'd') {
    auto* p = static_cast<char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (p == MAP_FAILED) Die("mmap");
    rate = Run(seconds, size, update, [&](uint64_t off, uint64_t) {
      std::memcpy(p + off, payload, update);
      char* page = p + (off & ~uint64_t{4095});
      if (msync(page, (p + off + update) - page, MS_SYNC) != 0) Die("msync");
    });
  } else if (mode == 'e') {
    rate = Run(seconds, size, update, [&](uint64_t off, uint64_t) {
      if (pwrite(fd, payload, update, off) != static_cast<ssize_t>(update)) Die("pwrite");
    });
  } else {
    return 64;
  }
  std::printf("%c %zu %.0f\n", mode, update, rate);
  return 0;
}
