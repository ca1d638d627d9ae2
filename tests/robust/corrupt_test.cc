// Corrupt images: random bytes of metadata flipped (and, half the time, the checksums of
// the damaged structures recomputed, so that structural checks are reached rather than
// only the crc ones). fsck and mount must give a clear error or a repair, never crash,
// hang or touch memory outside the region; scripts/test.sh runs this under ASan/UBSan.
// PMEMFS_CORRUPT_ITERATIONS sets the number of images (default 400).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "extent/extent_map.h"
#include "extent/records.h"
#include "extent/superblock.h"
#include "fs/check.h"
#include "fs/filesystem.h"
#include "pmem/dram_region.h"

namespace pmemfs {
namespace {

constexpr uint64_t kSize = 16ull << 20;
const fs::Ctx kRoot{0, 0, 1};  // no capability checker: privileged

struct Range {
  uint64_t off, len;
};

class CorruptTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    spdlog::set_level(spdlog::level::off);  // every damaged image logs its error
    base_ = new pmem::DramRegion(kSize);
    ASSERT_TRUE(extent::Format(*base_, {}).ok());
    {
      auto m = fs::FileSystem::Mount(*base_, {});
      ASSERT_TRUE(m.ok());
      fs::FileSystem& fs = **m;
      uint64_t prev = format::kRootIno;
      for (int d = 0; d < 4; ++d) {
        uint64_t dir = fs.Mkdir(kRoot, prev, "dir" + std::to_string(d), 0755)->ino;
        for (int f = 0; f < 30; ++f) {
          uint64_t ino = fs.Mknod(kRoot, dir, "file-with-a-longer-name-" + std::to_string(f), S_IFREG | 0644, 0)->ino;
          std::string data(1000 + f * 300, char('a' + f % 26));
          for (int piece = 0; piece < 1 + f % 7; ++piece) {  // several extents, some with holes
            (void)fs.Write(ino, piece * 3 * 4096, data.data(), data.size());
          }
          if (f % 5 == 0) (void)fs.SetXattr(kRoot, ino, "user.tag", "value-" + std::to_string(f), 0);
        }
        (void)fs.Symlink(kRoot, dir, "link", "../dir0/file-with-a-longer-name-1");
        prev = dir;
      }
      uint64_t big = fs.Mknod(kRoot, format::kRootIno, "big", S_IFREG | 0644, 0)->ino;
      for (int i = 0; i < 400; ++i) (void)fs.Write(big, i * 8192, "x", 1);  // an extent-block chain
      uint64_t orphan = fs.Mknod(kRoot, format::kRootIno, "orphan", S_IFREG | 0644, 0)->ino;
      (void)fs.Write(orphan, 0, "gone", 4);
      (void)fs.Open(orphan, O_RDWR);
      (void)fs.Unlink(format::kRootIno, "orphan");
      (void)m->release();  // as a crash: the orphan stays on the orphan list
    }
    auto sb = extent::ReadSuperblock(*base_);
    ASSERT_TRUE(sb.ok());
    sb_ = sb->sb;
    // Where the metadata lives: the fixed area, and every block an inode uses for metadata.
    targets_.push_back({0, sb_.data_off});
    for (uint64_t ino = 1; ino < sb_.inode_count; ++ino) {
      const auto* in = base_->At<format::Inode>(extent::InodeOff(sb_, ino));
      if (in->mode == 0) continue;
      if (in->xattr_block) targets_.push_back({in->xattr_block, format::kBlockSize});
      for (uint64_t b = in->extent_block; b; b = base_->At<format::ExtentBlock>(b)->next)
        targets_.push_back({b, format::kBlockSize});
      if (S_ISDIR(in->mode)) {
        auto map = extent::ExtentMap::Load(*base_, sb_, ino, *in);
        ASSERT_TRUE(map.ok());
        for (const auto& [lblk, e] : map->entries())
          targets_.push_back({e.e.pblk * format::kBlockSize, uint64_t{e.e.len} * format::kBlockSize});
      }
    }
  }
  static void TearDownTestSuite() { delete base_; }

  // Flips 1..8 bytes of metadata; with `reseal`, recomputes the crc of damaged inodes and
  // of the superblock so the damage passes the checksum and meets the structural checks.
  static void Damage(pmem::DramRegion& r, std::mt19937_64& rng, bool reseal) {
    int n = 1 + rng() % 8;
    for (int i = 0; i < n; ++i) {
      // Half the flips in the inode table or directory/extent/xattr blocks, where the
      // structure is richest; the rest anywhere in metadata.
      const Range& t = targets_[rng() % 2 ? 0 : rng() % targets_.size()];
      uint64_t off = t.off + rng() % t.len;
      if (rng() % 2 && t.off == 0) {
        off = sb_.inode_table_off + rng() % (sb_.inode_count * sizeof(format::Inode));
      }
      *r.At<uint8_t>(off) ^= uint8_t(1 + rng() % 255);
      if (!reseal) continue;
      if (off < sizeof(format::Superblock)) extent::SealSuperblock(*r.At<format::Superblock>(0));
      uint64_t table_end = sb_.inode_table_off + sb_.inode_count * sizeof(format::Inode);
      if (off >= sb_.inode_table_off && off < table_end) {
        uint64_t ino = (off - sb_.inode_table_off) / sizeof(format::Inode);
        extent::SealInode(*r.At<format::Inode>(extent::InodeOff(sb_, ino)));
      }
    }
  }

  // Walks everything reachable and reads every file; errors are fine, crashes are not.
  static void Walk(fs::FileSystem& fs, uint64_t dir, int depth) {
    if (depth > 16) return;
    std::vector<std::string> names;
    (void)fs.ReadDir(dir, 0, true, [&](std::string_view name, const fs::Entry&, uint64_t) {
      if (name != "." && name != ".." && names.size() < 10000) names.emplace_back(name);
      return true;
    });
    for (const auto& name : names) {
      auto e = fs.Lookup(dir, name);
      if (!e.ok()) continue;
      (void)fs.ListXattr(e->ino);
      (void)fs.GetXattr(e->ino, "user.tag");
      (void)fs.GetXattr(e->ino, "user.pmemfs.extents");
      if (S_ISDIR(e->attr.st_mode)) {
        Walk(fs, e->ino, depth + 1);
      } else if (S_ISLNK(e->attr.st_mode)) {
        (void)fs.Readlink(e->ino);
      } else if (S_ISREG(e->attr.st_mode)) {
        uint64_t len = std::min<uint64_t>(e->attr.st_size, 4 << 20);
        (void)fs.Read(e->ino, 0, len, [](const std::vector<fs::FileSystem::Piece>&) {});
        (void)fs.Write(e->ino, 0, "w", 1);
      }
    }
    (void)fs.Mknod(kRoot, dir, "new-after-damage", S_IFREG | 0644, 0);
  }

  static pmem::DramRegion* base_;
  static format::Superblock sb_;
  static std::vector<Range> targets_;
};

pmem::DramRegion* CorruptTest::base_ = nullptr;
format::Superblock CorruptTest::sb_{};
std::vector<Range> CorruptTest::targets_;

TEST_F(CorruptTest, FsckAndMountSurviveFlippedMetadata) {
  const char* env = std::getenv("PMEMFS_CORRUPT_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 400;
  const char* seed_env = std::getenv("PMEMFS_TEST_SEED");
  const uint64_t seed = seed_env ? std::stoull(seed_env) : std::random_device{}();
  std::printf("seed %llu (PMEMFS_TEST_SEED repeats it)\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  int clean = 0, repaired = 0, unrepaired = 0, operational = 0, mounted = 0;
  pmem::DramRegion r(kSize);
  for (int it = 0; it < iterations; ++it) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " iteration " + std::to_string(it));
    std::memcpy(r.base(), base_->base(), kSize);
    Damage(r, rng, it % 2 == 1);
    std::vector<uint8_t> damaged(r.base(), r.base() + kSize);

    fs::CheckResult first = fs::Check(r, {});  // -n on this copy (it replays the journal)
    std::memcpy(r.base(), damaged.data(), kSize);
    fs::CheckOptions fix;
    fix.repair = true;
    fs::CheckResult repair = fs::Check(r, fix);
    if (repair.ExitCode() == 1) {
      fs::CheckResult again = fs::Check(r, {});
      EXPECT_EQ(again.ExitCode(), 0) << "fsck -y claimed to repair everything, a second fsck -n disagrees ("
                                     << again.problems << " problems)";
      ++repaired;
    } else if (first.ExitCode() == 0) {
      ++clean;  // the flip hit unused bytes
    } else if (repair.ExitCode() == 8) {
      ++operational;
    } else {
      ++unrepaired;
    }

    std::memcpy(r.base(), damaged.data(), kSize);
    auto m = fs::FileSystem::Mount(r, {});
    if (m.ok()) {
      ++mounted;
      Walk(**m, format::kRootIno, 0);
    }
  }
  std::printf("%d images: %d clean, %d repaired (then clean), %d left with errors, %d unusable (exit 8); "
              "%d mounted and walked\n",
              iterations, clean, repaired, unrepaired, operational, mounted);
}

}  // namespace
}  // namespace pmemfs
