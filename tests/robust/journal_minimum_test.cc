// SPDX-License-Identifier: BSD-3-Clause
// The minimum journal mkfs allows (extent::kMinJournalSize) holds the largest transactions
// the filesystem builds, on the worst free space there is: every free run one block long.
// Lowering the minimum below what these need makes this test fail (EFBIG).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "extent/superblock.h"
#include "fs/filesystem.h"
#include "pmem/dram_region.h"
#include "testutil.h"

namespace pmemfs {
namespace {

using format::kRootIno;
const fs::Ctx kRoot{0, 0, 1};

TEST(JournalMinimum, HoldsTheLargestTransactionsOnFragmentedSpace) {
  spdlog::set_level(spdlog::level::warn);
  pmem::DramRegion region(64ull << 20);
  extent::MkfsOptions opts;
  opts.journal_size = extent::kMinJournalSize;
  ASSERT_OK(extent::Format(region, opts));
  auto m = fs::FileSystem::Mount(region, {});
  ASSERT_OK(m);
  fs::FileSystem& fs = **m;
  // Two files written block by block in turn take alternate blocks; removing one leaves
  // free space in runs of one block, and the other with an extent per block.
  uint64_t keep = fs.Mknod(kRoot, kRootIno, "keep", S_IFREG | 0644, 0)->ino;
  uint64_t hole = fs.Mknod(kRoot, kRootIno, "hole", S_IFREG | 0644, 0)->ino;
  const std::string block(4096, 'k');
  for (uint64_t i = 0;; ++i) {
    if (!fs.Write(keep, i * 4096, block.data(), block.size()).ok()) break;
    if (!fs.Write(hole, i * 4096, block.data(), block.size()).ok()) break;
  }
  ASSERT_OK(fs.Unlink(kRootIno, "hole"));
  fs.Forget(hole, 1);  // the space of a removed file comes back with its last reference
  const uint64_t free_blocks = fs.Statfs().bfree;
  ASSERT_GT(free_blocks, 2000u);

  // A 1 MiB write (FUSE's largest) into 256 one-block runs, with an xattr to rewrite.
  uint64_t f = fs.Mknod(kRoot, kRootIno, "f", S_IFREG | 04755, 0)->ino;
  ASSERT_OK(fs.SetXattr(kRoot, f, "security.capability", std::string(2000, 'c'), 0));
  const std::string mib(1 << 20, 'w');
  fs::Ctx user{1000, 1000, 1, [](uint32_t, int) { return false; }};
  ASSERT_OK(fs.Write(f, 0, mib.data(), mib.size(), user));
  // Over a fragmented preallocation: every unwritten extent converted in one transaction.
  uint64_t g = fs.Mknod(kRoot, kRootIno, "g", S_IFREG | 0644, 0)->ino;
  ASSERT_OK(fs.Fallocate(g, 0, 0, 1 << 20));
  ASSERT_OK(fs.Write(g, 4096 * 3, mib.data(), mib.size() - 4096 * 6));
  // Truncates and unlinks of files with an extent per block, in batches.
  fs::SetAttrIn shrink;
  shrink.mask = fs::kSetSize;
  shrink.size = 0;
  ASSERT_OK(fs.SetAttr(kRoot, f, shrink));
  ASSERT_OK(fs.Unlink(kRootIno, "g"));
  fs.Forget(g, 1);
  ASSERT_OK(fs.Unlink(kRootIno, "keep"));
  fs.Forget(keep, 1);
  // Renames across directories with replacement, the largest entries.
  uint64_t d1 = fs.Mkdir(kRoot, kRootIno, "d1", 0755)->ino, d2 = fs.Mkdir(kRoot, kRootIno, "d2", 0755)->ino;
  std::string long_name(255, 'x');
  ASSERT_OK(fs.Mknod(kRoot, d1, long_name, S_IFREG | 0644, 0));
  ASSERT_OK(fs.Mknod(kRoot, d2, long_name, S_IFREG | 0644, 0));
  ASSERT_OK(fs.Rename(d1, long_name, d2, long_name, 0));
  m->reset();
}

}  // namespace
}  // namespace pmemfs
