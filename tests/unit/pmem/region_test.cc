// SPDX-License-Identifier: BSD-3-Clause
// pmem: the libpmem2 region on a file, the DRAM region, and the crash-tracing region.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>

#include "pmem/crash_region.h"
#include "pmem/dram_region.h"
#include "pmem/fault.h"
#include "pmem/pmem2_region.h"
#include "testutil.h"

namespace pmemfs::pmem {
namespace {

class Pmem2RegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/dev/shm/pmemfs-region-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/region";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void MakeFile(uint64_t size, mode_t mode = 0600) {
    int fd = ::open(path_.c_str(), O_CREAT | O_RDWR, mode);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, size), 0);
    ::close(fd);
  }
  std::string dir_, path_;
};

TEST_F(Pmem2RegionTest, MapsAFileWholeAndPersists) {
  MakeFile(8 << 20);
  auto r = Pmem2Region::Open(path_, {});
  ASSERT_OK(r);
  Pmem2Region& region = **r;
  EXPECT_EQ(region.size(), 8u << 20);
  EXPECT_NE(region.base(), nullptr);
  EXPECT_EQ(region.alignment() % 4096, 0u);
  EXPECT_FALSE(region.read_only());
  EXPECT_EQ(region.path(), std::filesystem::canonical(path_).string());
  EXPECT_NE(region.Describe().find("file"), std::string::npos) << region.Describe();

  region.CopyFlush(4096, "persisted", 9);
  region.ZeroFlush(8192, 100);
  std::memcpy(region.At<char>(100), "flushed", 7);
  region.Persist(100, 7);
  r->reset();  // unmap; the bytes must be in the file
  int fd = ::open(path_.c_str(), O_RDONLY);
  char buf[16] = {};
  ASSERT_EQ(::pread(fd, buf, 9, 4096), 9);
  EXPECT_EQ(std::string(buf, 9), "persisted");
  ASSERT_EQ(::pread(fd, buf, 7, 100), 7);
  EXPECT_EQ(std::string(buf, 7), "flushed");
  ::close(fd);
}

TEST_F(Pmem2RegionTest, OneHolderAtATime) {
  MakeFile(4 << 20);
  auto first = Pmem2Region::Open(path_, {});
  ASSERT_OK(first);
  auto second = Pmem2Region::Open(path_, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.code(), EBUSY);
  auto unlocked = Pmem2Region::Open(path_, {.read_only = true, .lock = false});
  EXPECT_OK(unlocked);
  first->reset();
  EXPECT_OK(Pmem2Region::Open(path_, {}));  // the lock went with the first holder
}

TEST_F(Pmem2RegionTest, ErrorsAreErrnos) {
  auto missing = Pmem2Region::Open(dir_ + "/missing", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), ENOENT);
  auto directory = Pmem2Region::Open(dir_, {});
  ASSERT_FALSE(directory.ok());
  MakeFile(0);
  auto empty = Pmem2Region::Open(path_, {});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.code(), EINVAL);
  MakeFile(4 << 20, 0400);
  ::chmod(path_.c_str(), 0400);
  auto ro = Pmem2Region::Open(path_, {.read_only = true});
  ASSERT_OK(ro);
  EXPECT_TRUE((*ro)->read_only());
}

// The device-dax emulation (PMEMFS_TEST_DEVDAX, src/common/devdax.h): a file region takes
// the device's rules. Each test sets the variables and removes them again.
class DevdaxEmulationTest : public Pmem2RegionTest {
 protected:
  void SetUp() override {
    Pmem2RegionTest::SetUp();
    ::unsetenv("PMEM2_FORCE_GRANULARITY");
    ::setenv("PMEMFS_TEST_DEVDAX", "2M", 1);
  }
  void TearDown() override {
    ::unsetenv("PMEMFS_TEST_DEVDAX");
    ::unsetenv("PMEM2_FORCE_GRANULARITY");
    Pmem2RegionTest::TearDown();
  }
};

TEST_F(DevdaxEmulationTest, FileRegionReportsTheDevicesAlignmentAndCacheLineGranularity) {
  MakeFile(8 << 20);
  auto r = Pmem2Region::Open(path_, {});
  ASSERT_OK(r);
  EXPECT_EQ((*r)->alignment(), 2u << 20);
  EXPECT_EQ((*r)->granularity(), Granularity::kCacheLine) << "libpmem2's PMEM2_FORCE_GRANULARITY=CACHE_LINE";
  EXPECT_TRUE((*r)->is_devdax());
  EXPECT_TRUE((*r)->is_emulated_devdax());
  EXPECT_NE((*r)->Describe().find("PMEMFS_TEST_DEVDAX"), std::string::npos) << (*r)->Describe();
  (*r)->CopyFlush(4096, "cacheline", 9);
  (*r)->Drain();
  EXPECT_EQ(std::string((*r)->At<char>(4096), 9), "cacheline");
  // Without the variable the same file is an ordinary file region.
  r->reset();
  ::unsetenv("PMEMFS_TEST_DEVDAX");
  ::unsetenv("PMEM2_FORCE_GRANULARITY");
  auto plain = Pmem2Region::Open(path_, {});
  ASSERT_OK(plain);
  EXPECT_FALSE((*plain)->is_devdax());
  EXPECT_EQ((*plain)->alignment(), 4096u);
}

TEST_F(DevdaxEmulationTest, MappingsOffTheAlignmentAreRefusedNamingTheRule) {
  MakeFile(3 << 20);  // a device-dax's size is always a multiple of its alignment
  auto r = Pmem2Region::Open(path_, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), EINVAL);
  EXPECT_NE(r.error().Message().find("multiples of the device alignment"), std::string::npos) << r.error().Message();
  devdax::Rules rules{true, true, 2u << 20};
  EXPECT_OK(CheckMap(rules, 2 << 20, 4 << 20, path_));
  EXPECT_EQ(CheckMap(rules, 4096, 2 << 20, path_).code(), EINVAL);
  EXPECT_EQ(CheckMap(rules, 0, 4096, path_).code(), EINVAL);
  EXPECT_EQ(CheckMap(rules, 0, 0, path_).code(), EINVAL);
}

TEST_F(DevdaxEmulationTest, FileOperationsADevdaxLacksAreRefused) {
  // mkfs --size creates or extends a file: a device-dax has a fixed size.
  Status s = CheckFileOpsAllowed(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().Message().find("supports only open, mmap and close"), std::string::npos) << s.error().Message();
  MakeFile(2 << 20);
  EXPECT_FALSE(CheckFileOpsAllowed(path_).ok());
  ::unsetenv("PMEMFS_TEST_DEVDAX");
  EXPECT_OK(CheckFileOpsAllowed(path_));  // a plain file
  ::setenv("PMEMFS_TEST_DEVDAX", "2M", 1);
  // Page granularity would persist with msync, which a device-dax refuses.
  ::setenv("PMEM2_FORCE_GRANULARITY", "page", 1);
  auto r = Pmem2Region::Open(path_, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().Message().find("msync"), std::string::npos) << r.error().Message();
  ::setenv("PMEMFS_TEST_DEVDAX", "3M", 1);
  EXPECT_EQ(Pmem2Region::Open(path_, {}).code(), EINVAL) << "not a power of two";
}

TEST(DevdaxRules, RealDevicesKeepTheirAlignmentAndTheEmulationParses) {
  ::unsetenv("PMEMFS_TEST_DEVDAX");
  auto file = devdax::RulesFor(false, 4096);
  ASSERT_OK(file);
  EXPECT_FALSE(file->devdax);
  EXPECT_EQ(file->align, 4096u);
  auto dev = devdax::RulesFor(true, 1u << 30);
  ASSERT_OK(dev);
  EXPECT_TRUE(dev->devdax);
  EXPECT_FALSE(dev->emulated);
  EXPECT_EQ(dev->align, 1u << 30);
  for (const char* bad : {"2", "3M", "2MB", "x", "2G", "0"}) {
    ::setenv("PMEMFS_TEST_DEVDAX", bad, 1);
    EXPECT_EQ(devdax::EmulatedAlignment().code(), EINVAL) << bad;
  }
  for (auto [v, want] : {std::pair{"4K", 4096ull}, {"2M", 2ull << 20}, {"1G", 1ull << 30}, {"", 0ull}}) {
    ::setenv("PMEMFS_TEST_DEVDAX", v, 1);
    auto a = devdax::EmulatedAlignment();
    ASSERT_OK(a);
    EXPECT_EQ(*a, want) << v;
  }
  ::unsetenv("PMEMFS_TEST_DEVDAX");
}

// SIGBUS on a watched region mapping (src/pmem/fault.h): survived, recorded, the lost
// range replaced by zeros and remembered. The fault state is process-wide: deltas only.
TEST_F(Pmem2RegionTest, FaultOnAShrunkRegionFileIsSurvivedAndRecorded) {
  MakeFile(8 << 20);
  auto r = Pmem2Region::Open(path_, {});
  ASSERT_OK(r);
  Pmem2Region& region = **r;
  fault::Install();
  std::memset(region.At<char>(1 << 20), 'k', 4096);
  const uint64_t before = fault::Count();
  (void)fault::TakeThreadFault();
  ASSERT_EQ(::truncate(path_.c_str(), 2 << 20), 0);
  EXPECT_EQ(*region.At<volatile char>(5 << 20), 0) << "the load completes, on zeros";
  EXPECT_TRUE(fault::TakeThreadFault());
  EXPECT_FALSE(fault::TakeThreadFault()) << "the flag is taken once";
  EXPECT_EQ(fault::Count(), before + 1);
  *region.At<volatile char>(7 << 20) = 'x';  // the whole lost tail was replaced at once
  EXPECT_EQ(fault::Count(), before + 1);
  EXPECT_TRUE(fault::Replaced(region.At<char>(6 << 20), 100));
  EXPECT_TRUE(fault::Replaced(region.At<char>((2 << 20) - 10), 20)) << "straddles the new end";
  EXPECT_FALSE(fault::Replaced(region.At<char>(1 << 20), 4096));
  EXPECT_EQ(*region.At<char>(1 << 20), 'k') << "bytes before the new end are untouched";
  if (before == 0) {
    EXPECT_NE(fault::Describe().find("the region file shrank to 2097152 bytes (SIGBUS BUS_ADRERR)"), std::string::npos)
        << fault::Describe();
  }
}

TEST_F(Pmem2RegionTest, FaultWithoutAFileSizeReplacesOneAlignmentUnit) {
  MakeFile(8 << 20);
  int fd = ::open(path_.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  auto* base = static_cast<char*>(::mmap(nullptr, 8 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(base, MAP_FAILED);
  ::close(fd);
  ASSERT_TRUE(fault::Watch(base, 8 << 20, -1, 64 << 10));  // no descriptor: a poisoned line's case
  fault::Install();
  ASSERT_EQ(::truncate(path_.c_str(), 1 << 20), 0);
  const uint64_t before = fault::Count();
  EXPECT_EQ(*reinterpret_cast<volatile char*>(base + (3 << 20) + 5), 0);
  EXPECT_EQ(fault::Count(), before + 1);
  EXPECT_TRUE(fault::Replaced(base + (3 << 20), 64 << 10));
  EXPECT_FALSE(fault::Replaced(base + (3 << 20) + (64 << 10), 1)) << "one 64 KiB unit only";
  EXPECT_EQ(*reinterpret_cast<volatile char*>(base + (5 << 20)), 0);
  EXPECT_EQ(fault::Count(), before + 2);
  EXPECT_TRUE(fault::TakeThreadFault());
  fault::Unwatch(base);
  ::munmap(base, 8 << 20);
}

TEST_F(Pmem2RegionTest, FaultOutsideEveryRegionStillKills) {
  MakeFile(4 << 20);
  EXPECT_EXIT(
      {
        fault::Install();
        int fd = ::open(path_.c_str(), O_RDWR);
        auto* p = static_cast<char*>(::mmap(nullptr, 4 << 20, PROT_READ, MAP_SHARED, fd, 0));
        (void)!::ftruncate(fd, 0);
        volatile char c = p[1 << 20];
        (void)c;
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

TEST(DramRegion, ZeroedAndAddressable) {
  DramRegion r(1 << 20);
  EXPECT_EQ(r.size(), 1u << 20);
  for (uint64_t off = 0; off < r.size(); off += 4096) ASSERT_EQ(*r.At<uint64_t>(off), 0u);
  r.CopyFlush(8, "abc", 3);
  EXPECT_EQ(std::string(r.At<char>(8), 3), "abc");
  EXPECT_TRUE(r.Contains(r.size() - 8, 8));
  EXPECT_FALSE(r.Contains(r.size() - 8, 9));
  EXPECT_FALSE(r.Contains(~0ull, 2));  // no overflow
}

// The crash model: durable = flushed before a completed fence; after the last fence, any
// subset of flushed 8-byte words; never-flushed stores are lost.
TEST(CrashRegion, ImagesPerFenceAndPendingWords) {
  CrashRegion r(64 << 10);
  *r.At<uint64_t>(0) = 1;  // before tracing: part of the starting image
  r.StartTrace();
  *r.At<uint64_t>(64) = 0xaa;
  r.Flush(64, 8);
  r.Drain();  // fence 1
  *r.At<uint64_t>(128) = 0xbb;
  *r.At<uint64_t>(136) = 0xcc;
  r.Flush(128, 16);  // two words, pending
  *r.At<uint64_t>(256) = 0xdd;  // never flushed
  r.Drain();  // fence 2
  *r.At<uint64_t>(512) = 0xee;
  r.Flush(513, 2);  // widened to the whole word at 512
  ASSERT_EQ(r.fences(), 2u);
  EXPECT_EQ(r.PendingWords(0), 1u);
  EXPECT_EQ(r.PendingWords(1), 2u);
  EXPECT_EQ(r.PendingWords(2), 1u);

  auto word = [](const std::vector<uint8_t>& img, uint64_t off) {
    uint64_t v;
    std::memcpy(&v, img.data() + off, 8);
    return v;
  };
  auto none = [](size_t) { return false; };
  auto all = [](size_t) { return true; };
  auto img0 = r.Image(0, none);
  EXPECT_EQ(word(img0, 0), 1u);
  EXPECT_EQ(word(img0, 64), 0u);
  EXPECT_EQ(word(r.Image(0, all), 64), 0xaau);
  auto img1 = r.Image(1, [](size_t i) { return i == 1; });  // only the second pending word
  EXPECT_EQ(word(img1, 64), 0xaau);
  EXPECT_EQ(word(img1, 128), 0u);
  EXPECT_EQ(word(img1, 136), 0xccu);
  auto img2 = r.Image(2, all);
  EXPECT_EQ(word(img2, 128), 0xbbu);
  EXPECT_EQ(word(img2, 256), 0u) << "a store never flushed must never reach the image";
  EXPECT_EQ(word(img2, 512), 0xeeu);
  EXPECT_EQ(word(r.Image(2, none), 512), 0u);
  r.StartTrace();  // the current bytes become the start; the trace is forgotten
  EXPECT_EQ(r.fences(), 0u);
  EXPECT_EQ(word(r.Image(0, none), 256), 0xddu);
}

}  // namespace
}  // namespace pmemfs::pmem
