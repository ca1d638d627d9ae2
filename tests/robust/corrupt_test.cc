// SPDX-License-Identifier: BSD-3-Clause
// Corrupt images, attacked the way a bad disk or a hostile user would: random byte flips in
// metadata, whole metadata blocks overwritten, checksums resealed so the damage meets the
// structural checks, and crafted structures (an entry whose name bytes parse as entries,
// extents aliasing another file's blocks, a symlink longer than the daemon allows, a
// directory with an unwritten extent or a hole, a named inode on the orphan list, entries
// naming out-of-range inodes or a second name for a directory, a loop in an extent chain,
// a detached subtree, damaged bitmaps and state block).
//
// For every image: fsck -n writes nothing; fsck -y either repairs or says "cannot repair";
// after it fsck -n is clean (or fsck had said why), the image mounts, everything reachable
// reads without error, the daemon's own changes keep it clean; nothing crashes, hangs or
// touches memory outside the region (scripts/test.sh runs this under ASan/UBSan).
// PMEMFS_CORRUPT_ITERATIONS sets the number of images (default 400), PMEMFS_TEST_SEED the seed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "extent/superblock.h"
#include "pmem/dram_region.h"
#include "robust/image_util.h"

namespace pmemfs::testing {
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
        dirs_.push_back(dir);
        for (int f = 0; f < 30; ++f) {
          // Every third name is longer than 48 bytes: its entry takes more than one slot.
          std::string name = (f % 3 ? "file-" : "file-with-a-name-long-enough-to-span-two-slots-") + std::to_string(f);
          uint64_t ino = fs.Mknod(kRoot, dir, name, S_IFREG | 0644, 0)->ino;
          files_.push_back(ino);
          std::string data(1000 + f * 300, char('a' + f % 26));
          for (int piece = 0; piece < 1 + f % 7; ++piece) {  // several extents, some with holes
            (void)fs.Write(ino, piece * 3 * 4096, data.data(), data.size());
          }
          if (f % 5 == 0) (void)fs.SetXattr(kRoot, ino, "user.tag", "value-" + std::to_string(f), 0);
          if (f % 9 == 0) (void)fs.Link(ino, format::kRootIno, "link-" + std::to_string(d) + "-" + std::to_string(f));
          if (f == 7) (void)fs.Fallocate(ino, 0, 1 << 20, 64 << 10);  // unwritten extents
        }
        symlinks_.push_back(fs.Symlink(kRoot, dir, "link", "../dir0/file-1")->ino);
        (void)fs.Mkdir(kRoot, dir, "empty", 0700);
        (void)fs.Mknod(kRoot, dir, "fifo", S_IFIFO | 0600, 0);
        prev = dir;
      }
      big_ = fs.Mknod(kRoot, format::kRootIno, "big", S_IFREG | 0644, 0)->ino;
      for (int i = 0; i < 400; ++i) (void)fs.Write(big_, i * 8192, "x", 1);  // an extent-block chain
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
      if (S_ISDIR(in->mode))
        for (const auto& e : ExtentsOf(*base_, sb_, ino))
          targets_.push_back({e.e.pblk * format::kBlockSize, uint64_t{e.e.len} * format::kBlockSize});
    }
    // A clean start: the base image itself passes.
    pmem::DramRegion copy(kSize);
    std::memcpy(copy.base(), base_->base(), kSize);
    CheckRun clean = RunCheck(copy, false);
    ASSERT_EQ(clean.result.ExitCode(), 0) << clean.report;
  }
  static void TearDownTestSuite() { delete base_; }

  static uint64_t InodeOff(uint64_t ino) { return extent::InodeOff(sb_, ino); }
  static format::Inode& InodeAt(pmem::Region& r, uint64_t ino) { return *r.At<format::Inode>(InodeOff(ino)); }
  static void Reseal(pmem::Region& r, uint64_t ino) { extent::SealInode(InodeAt(r, ino)); }
  template <typename T>
  static const T& Pick(std::mt19937_64& rng, const std::vector<T>& v) { return v[rng() % v.size()]; }

  // Flips 1..8 bytes of metadata; with `reseal`, recomputes the crc of damaged inodes and
  // of the superblock so the damage passes the checksum and meets the structural checks.
  static std::string FlipBytes(pmem::Region& r, std::mt19937_64& rng, bool reseal) {
    int n = 1 + rng() % 8;
    for (int i = 0; i < n; ++i) {
      const Range& t = targets_[rng() % 2 ? 0 : rng() % targets_.size()];
      uint64_t off = t.off + rng() % t.len;
      if (rng() % 2 && t.off == 0) off = sb_.inode_table_off + rng() % (sb_.inode_count * sizeof(format::Inode));
      *r.At<uint8_t>(off) ^= uint8_t(1 + rng() % 255);
      if (!reseal) continue;
      if (off < sizeof(format::Superblock)) extent::SealSuperblock(*r.At<format::Superblock>(0));
      uint64_t table_end = sb_.inode_table_off + sb_.inode_count * sizeof(format::Inode);
      if (off >= sb_.inode_table_off && off < table_end) Reseal(r, (off - sb_.inode_table_off) / sizeof(format::Inode));
    }
    return reseal ? "flipped bytes, resealed" : "flipped bytes";
  }

  // One whole metadata block overwritten with random bytes or zeros; inode table blocks
  // are resealed half the time (garbage that passes the checksum).
  static std::string RandomBlock(pmem::Region& r, std::mt19937_64& rng) {
    const Range& t = targets_[rng() % targets_.size()];
    uint64_t blk = (t.off + (rng() % t.len)) & ~(format::kBlockSize - 1);
    if (blk < format::kBlockSize) blk = format::kBlockSize * (1 + rng() % 3);  // keep the primary superblock
    bool zeros = rng() % 3 == 0;
    for (uint64_t i = 0; i < format::kBlockSize; ++i) *r.At<uint8_t>(blk + i) = zeros ? 0 : uint8_t(rng());
    if (!zeros && rng() % 2 && blk >= sb_.inode_table_off &&
        blk < sb_.inode_table_off + sb_.inode_count * sizeof(format::Inode)) {
      for (uint64_t ino = (blk - sb_.inode_table_off) / sizeof(format::Inode), k = 0; k < 16; ++k) Reseal(r, ino + k);
    }
    return std::string(zeros ? "zeroed" : "random") + " block at " + std::to_string(blk);
  }

  // Structures crafted to pass every checksum and meet a specific rule.
  static std::string Craft(pmem::Region& r, std::mt19937_64& rng) {
    switch (rng() % 14) {
      case 0: {  // a removed long entry whose leftover name bytes hold a Dirent (the removal
                 // bug for names over 48 bytes; or a hostile name)
        uint64_t dir = Pick(rng, dirs_);
        for (const DirSlot& s : EntriesOf(r, sb_, dir)) {
          if (s.de.nslots < 2) continue;
          format::Dirent fake{};
          const uint64_t targets[] = {Pick(rng, dirs_), format::kRootIno, Pick(rng, files_), sb_.inode_count + 7,
                                      uint64_t{1} << 40, 3000};
          fake.ino = targets[rng() % 6];
          fake.name_len = 3;
          fake.nslots = 1;
          fake.type = uint8_t(rng() % 2 ? 4 : 8);
          std::string name = "evl";
          fake.hash = fs::NameHash(name);
          std::memset(r.base() + s.off, 0, 8);  // the entry "removed": ino 0 in its first slot only
          std::memcpy(r.base() + s.off + format::kDirSlotSize, &fake, sizeof(fake));
          std::memcpy(r.base() + s.off + format::kDirSlotSize + sizeof(fake), name.data(), name.size());
          return "name bytes parsed as an entry naming " + std::to_string(fake.ino);
        }
        return "nothing";
      }
      case 1: {  // file B's extent pointing into file A's blocks
        uint64_t a = Pick(rng, files_), b = Pick(rng, files_);
        auto ea = ExtentsOf(r, sb_, a), eb = ExtentsOf(r, sb_, b);
        if (a == b || ea.empty() || eb.empty()) return "nothing";
        const ExtentSlot& victim = eb[rng() % eb.size()];
        format::Extent e = victim.e;
        e.pblk = ea[rng() % ea.size()].e.pblk;
        std::memcpy(r.base() + victim.slot, &e, sizeof(e));
        if (victim.slot < sb_.data_off) Reseal(r, b);
        return "inode " + std::to_string(b) + " aliased into inode " + std::to_string(a);
      }
      case 2: {  // a symlink of 5000 bytes, or 0
        uint64_t l = Pick(rng, symlinks_);
        InodeAt(r, l).size = rng() % 2 ? 5000 : 0;
        Reseal(r, l);
        return "symlink size";
      }
      case 3: {  // a directory with an unwritten extent, or a hole
        uint64_t d = Pick(rng, dirs_);
        auto ex = ExtentsOf(r, sb_, d);
        if (ex.empty()) return "nothing";
        format::Extent e = ex[rng() % ex.size()].e;
        if (rng() % 2) e.flags = format::kExtentUnwritten;
        else e.lblk += 1 + rng() % 3;
        std::memcpy(r.base() + ex[0].slot, &e, sizeof(e));
        Reseal(r, d);
        return "directory unwritten or hole";
      }
      case 4: {  // a named inode at the head of the orphan list
        uint64_t f = Pick(rng, files_);
        auto& in = InodeAt(r, f);
        auto* st = r.At<format::StateBlock>(sb_.state_off);
        in.next_orphan = st->orphan_head;
        in.prev_orphan = 0;
        in.flags |= format::kInodeOrphan;
        if (rng() % 2) in.nlink = 0;
        Reseal(r, f);
        st->orphan_head = f;
        return "named inode " + std::to_string(f) + " on the orphan list";
      }
      case 5: {  // an entry naming an inode beyond the table
        auto ents = EntriesOf(r, sb_, Pick(rng, dirs_));
        if (ents.empty()) return "nothing";
        uint64_t bad = rng() % 2 ? sb_.inode_count + rng() % 1000 : ~uint64_t{0} - rng() % 1000;
        std::memcpy(r.base() + ents[rng() % ents.size()].off, &bad, 8);
        return "entry out of range";
      }
      case 6:  // the state block's magic
        *r.At<uint8_t>(sb_.state_off + rng() % 8) ^= 0x40;
        return "state block magic";
      case 7: {  // an inode bitmap word cleared or set
        uint64_t w = rng() % ((sb_.inode_count + 63) / 64 < 4 ? 1 : 4);
        *r.At<uint64_t>(sb_.inode_bitmap_off + w * 8) = rng() % 2 ? 0 : ~uint64_t{0};
        return "inode bitmap word";
      }
      case 8: {  // a second name for a directory: an entry retargeted at another directory
        auto ents = EntriesOf(r, sb_, Pick(rng, dirs_));
        if (ents.empty()) return "nothing";
        const DirSlot& s = ents[rng() % ents.size()];
        format::Dirent de = s.de;
        de.ino = Pick(rng, dirs_);
        de.type = 4;
        std::memcpy(r.base() + s.off, &de, sizeof(de));
        return "second name for directory " + std::to_string(de.ino);
      }
      case 9: {  // a loop in the big file's extent chain
        uint64_t head = InodeAt(r, big_).extent_block;
        if (!head) return "nothing";
        r.At<format::ExtentBlock>(head)->next = head;
        return "extent chain loop";
      }
      case 10: {  // a subtree detached: the name of dir1 (holding dir2, dir3) removed
        for (const DirSlot& s : EntriesOf(r, sb_, dirs_[0]))
          if (s.de.ino == dirs_[1]) std::memset(r.base() + s.off, 0, uint64_t{s.de.nslots} * format::kDirSlotSize);
        return "subtree detached";
      }
      case 11: {  // block bitmap words
        uint64_t words = sb_.total_blocks / 64;
        uint64_t w = rng() % words;
        for (int i = 0; i < 1 + int(rng() % 4); ++i) *r.At<uint64_t>(sb_.block_bitmap_off + (w + i) % words * 8) = rng() % 2 ? 0 : ~uint64_t{0};
        return "block bitmap words";
      }
      case 12: {  // an entry's type and hash wrong
        auto ents = EntriesOf(r, sb_, Pick(rng, dirs_));
        if (ents.empty()) return "nothing";
        format::Dirent de = ents[rng() % ents.size()].de;
        de.type ^= 0x0c;
        de.hash ^= 1;
        std::memcpy(r.base() + ents[0].off, &de, sizeof(de));
        return "entry type and hash";
      }
      default: {  // two files sharing an xattr block, or an xattr block in a directory's block
        uint64_t a = Pick(rng, files_), b = Pick(rng, files_);
        if (!InodeAt(r, a).xattr_block) return "nothing";
        InodeAt(r, b).xattr_block = rng() % 2 ? InodeAt(r, a).xattr_block : ExtentsOf(r, sb_, dirs_[0]).front().e.pblk * format::kBlockSize;
        Reseal(r, b);
        return "xattr block shared";
      }
    }
  }

  static pmem::DramRegion* base_;
  static format::Superblock sb_;
  static std::vector<Range> targets_;
  static std::vector<uint64_t> dirs_, files_, symlinks_;
  static uint64_t big_;
};

pmem::DramRegion* CorruptTest::base_ = nullptr;
format::Superblock CorruptTest::sb_{};
std::vector<Range> CorruptTest::targets_;
std::vector<uint64_t> CorruptTest::dirs_, CorruptTest::files_, CorruptTest::symlinks_;
uint64_t CorruptTest::big_ = 0;

TEST_F(CorruptTest, FsckRepairsEveryImageItDamagesAndTheResultMountsAndReads) {
  const char* env = std::getenv("PMEMFS_CORRUPT_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 400;
  const char* seed_env = std::getenv("PMEMFS_TEST_SEED");
  const uint64_t seed = seed_env ? std::stoull(seed_env) : std::random_device{}();
  std::printf("seed %llu (PMEMFS_TEST_SEED repeats it)\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  int clean = 0, repaired = 0, unrepairable = 0;
  pmem::DramRegion r(kSize);
  std::vector<uint8_t> damaged(kSize);
  for (int it = 0; it < iterations; ++it) {
    std::memcpy(r.base(), base_->base(), kSize);
    std::string what;
    for (int k = 0, n = 1 + (rng() % 4 == 0) + (rng() % 8 == 0); k < n; ++k) {
      switch (rng() % 4) {
        case 0: what += FlipBytes(r, rng, false) + "; "; break;
        case 1: what += FlipBytes(r, rng, true) + "; "; break;
        case 2: what += RandomBlock(r, rng) + "; "; break;
        default: what += Craft(r, rng) + "; "; break;
      }
    }
    SCOPED_TRACE("seed " + std::to_string(seed) + " iteration " + std::to_string(it) + ": " + what);
    std::memcpy(damaged.data(), r.base(), kSize);

    CheckRun check = RunCheck(r, false);
    ASSERT_EQ(std::memcmp(r.base(), damaged.data(), kSize), 0) << "fsck -n wrote to the region";
    ASSERT_NE(check.result.ExitCode(), 8) << check.report;
    CheckRun fix = RunCheck(r, true);
    ASSERT_NE(fix.result.ExitCode(), 8) << fix.report;
    EXPECT_EQ(fix.result.ExitCode() == 0, check.result.ExitCode() == 0)
        << "-n and -y disagree on whether the image is clean\n-n:\n" << check.report << "-y:\n" << fix.report;
    if (fix.result.ExitCode() == 4) {
      ASSERT_TRUE(fix.cannot_repair()) << "fsck -y left errors without saying why:\n" << fix.report;
      ++unrepairable;
      continue;
    }
    fix.result.ExitCode() == 0 ? ++clean : ++repaired;
    CheckRun after = RunCheck(r, false);
    ASSERT_EQ(after.result.ExitCode(), 0) << "fsck -n after fsck -y:\n" << after.report << "fsck -y said:\n" << fix.report;
    {
      auto m = fs::FileSystem::Mount(r, {});
      ASSERT_TRUE(m.ok()) << "the repaired image does not mount: " << m.error().Message() << "\n" << fix.report;
      std::string failures = ReadEverything(**m, /*write=*/true);
      ASSERT_EQ(failures, "") << "after fsck -y:\n" << fix.report;
    }
    CheckRun used = RunCheck(r, false);
    ASSERT_EQ(used.result.ExitCode(), 0) << "fsck -n after using the repaired image:\n" << used.report << "fsck -y said:\n"
                                         << fix.report;
  }
  std::printf("%d images: %d clean, %d repaired (then clean, mounted, read and written), %d unrepairable with a reason\n",
              iterations, clean, repaired, unrepairable);
}

}  // namespace
}  // namespace pmemfs::testing
