// SPDX-License-Identifier: BSD-3-Clause
// populate: fills a formatted region with N empty files (1,000 per directory) through the
// fs layer, without FUSE, so that mount time and daemon memory can be measured for large
// namespaces quickly.
//
//   populate REGION N
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "fs/filesystem.h"
#include "pmem/pmem2_region.h"

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: populate REGION N\n"), 64;
  using namespace pmemfs;
  auto region = pmem::Pmem2Region::Open(argv[1], {});
  if (!region.ok()) return std::fprintf(stderr, "%s: %s\n", argv[1], region.error().Message().c_str()), 1;
  auto fs = fs::FileSystem::Mount(std::move(region).value(), {});
  if (!fs.ok()) return std::fprintf(stderr, "mount: %s\n", fs.error().Message().c_str()), 1;
  const long n = std::atol(argv[2]);
  const fs::Ctx root{0, 0, 1};  // no capability checker: privileged
  uint64_t dir = 0;
  for (long i = 0; i < n; ++i) {
    if (i % 1000 == 0) {
      auto d = (*fs)->Mkdir(root, format::kRootIno, "d" + std::to_string(i / 1000), 0755);
      if (!d.ok()) return std::fprintf(stderr, "mkdir: %s\n", d.error().Message().c_str()), 1;
      dir = d->ino;
    }
    auto f = (*fs)->Mknod(root, dir, "file" + std::to_string(i), S_IFREG | 0644, 0);
    if (!f.ok()) return std::fprintf(stderr, "create %ld: %s\n", i, f.error().Message().c_str()), 1;
  }
  return 0;
}
