// SPDX-License-Identifier: BSD-3-Clause
// Power-cut crash tests: every metadata operation, every fence, sampled subsets of the
// words in flight (see crash_driver.h). PMEMFS_CRASH_SAMPLES enlarges the sampling.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "crash/crash_driver.h"
#include "extent/superblock.h"
#include "pmem/dram_region.h"

namespace pmemfs::crash {
namespace {

using fs::FileSystem;
using Handles = std::vector<uint64_t>;

const fs::Ctx kRoot{0, 0, 1};  // no capability checker: privileged

uint64_t Mk(FileSystem& fs, uint64_t parent, const std::string& name, uint32_t mode = S_IFREG | 0644) {
  auto e = fs.Mknod(kRoot, parent, name, mode, 0);
  if (!e.ok()) ADD_FAILURE() << "mknod " << name << ": " << e.error().Message();
  return e.ok() ? e->ino : 0;
}
uint64_t Dir(FileSystem& fs, uint64_t parent, const std::string& name) {
  auto e = fs.Mkdir(kRoot, parent, name, 0755);
  if (!e.ok()) ADD_FAILURE() << "mkdir " << name << ": " << e.error().Message();
  return e.ok() ? e->ino : 0;
}
uint64_t Ino(FileSystem& fs, uint64_t parent, const std::string& name) {
  auto e = fs.Lookup(parent, name);
  if (!e.ok()) ADD_FAILURE() << "lookup " << name << ": " << e.error().Message();
  return e.ok() ? e->ino : 0;
}
void Put(FileSystem& fs, uint64_t ino, uint64_t off, size_t len, char fill) {
  std::string data(len, fill);
  auto r = fs.Write(ino, off, data.data(), data.size());
  if (!r.ok()) ADD_FAILURE() << "write: " << r.error().Message();
}
void Ok(const Status& s, const char* what) {
  if (!s.ok()) ADD_FAILURE() << what << ": " << s.error().Message();
}
void SetSize(FileSystem& fs, uint64_t ino, uint64_t size) {
  fs::SetAttrIn in;
  in.mask = fs::kSetSize;
  in.size = size;
  auto r = fs.SetAttr(kRoot, ino, in);
  if (!r.ok()) ADD_FAILURE() << "truncate: " << r.error().Message();
}
// The common starting tree: /a/f (20 KiB), /a/g, /b/, /h (with an xattr), /big (300 KiB
// in several extents).
void BaseTree(FileSystem& fs, Handles&) {
  uint64_t a = Dir(fs, format::kRootIno, "a");
  Dir(fs, format::kRootIno, "b");
  uint64_t f = Mk(fs, a, "f");
  Put(fs, f, 0, 20480, 'f');
  Put(fs, Mk(fs, a, "g"), 0, 100, 'g');
  uint64_t h = Mk(fs, format::kRootIno, "h");
  Ok(fs.SetXattr(kRoot, h, "user.color", "blue", 0), "setxattr");
  uint64_t big = Mk(fs, format::kRootIno, "big");
  for (int i = 0; i < 6; ++i) Put(fs, big, i * 65536, 50000, char('A' + i));  // with holes
}

std::vector<Workload> Workloads() {
  const uint64_t R = format::kRootIno;
  std::vector<Workload> w;
  w.push_back({"create", BaseTree, [R](FileSystem& fs, Handles&) { Mk(fs, R, "new"); }, ""});
  w.push_back({"mkdir", BaseTree, [R](FileSystem& fs, Handles&) { Dir(fs, Ino(fs, R, "a"), "sub"); }, ""});
  w.push_back({"mknod_fifo", BaseTree, [R](FileSystem& fs, Handles&) { Mk(fs, R, "fifo", S_IFIFO | 0600); }, ""});
  w.push_back({"write_allocating", BaseTree,
               [R](FileSystem& fs, Handles&) { Put(fs, Ino(fs, R, "h"), 0, 3 * 4096 + 7, 'w'); }, ""});
  w.push_back({"write_appending", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 uint64_t f = Ino(fs, Ino(fs, R, "a"), "f");
                 Put(fs, f, 20480, 9000, 'z');
               },
               ""});
  w.push_back({"write_in_place", BaseTree,
               [R](FileSystem& fs, Handles&) { Put(fs, Ino(fs, Ino(fs, R, "a"), "f"), 100, 8000, 'q'); }, "/a/f"});
  w.push_back({"truncate_down", BaseTree, [R](FileSystem& fs, Handles&) { SetSize(fs, Ino(fs, R, "big"), 70000); },
               ""});
  w.push_back({"truncate_up", BaseTree,
               [R](FileSystem& fs, Handles&) { SetSize(fs, Ino(fs, Ino(fs, R, "a"), "g"), 1 << 20); }, ""});
  w.push_back({"punch_hole", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 Ok(fs.Fallocate(Ino(fs, R, "big"), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 200000),
                    "punch");
               },
               // The partial blocks at both ends are zeroed in place, as data: they may tear.
               "/big"});
  w.push_back({"fallocate", BaseTree,
               [R](FileSystem& fs, Handles&) { Ok(fs.Fallocate(Ino(fs, R, "h"), 0, 0, 100000), "fallocate"); }, ""});
  w.push_back({"unlink", BaseTree, [R](FileSystem& fs, Handles&) { Ok(fs.Unlink(R, "big"), "unlink"); }, ""});
  w.push_back({"unlink_open_file",
               [R](FileSystem& fs, Handles& open) {
                 BaseTree(fs, open);
                 uint64_t big = Ino(fs, R, "big");
                 Ok(fs.Open(big, O_RDWR), "open");
                 open.push_back(big);
               },
               [R](FileSystem& fs, Handles&) { Ok(fs.Unlink(R, "big"), "unlink"); }, ""});
  w.push_back({"release_of_unlinked_file",
               [R](FileSystem& fs, Handles& open) {
                 BaseTree(fs, open);
                 uint64_t big = Ino(fs, R, "big");
                 Ok(fs.Open(big, O_RDWR), "open");
                 Ok(fs.Unlink(R, "big"), "unlink");
                 open.push_back(big);
               },
               [](FileSystem& fs, Handles& open) {
                 fs.Release(open[0]);
                 fs.Forget(open[0], 2);  // BaseTree's mknod and the lookup above
               },
               ""});
  w.push_back({"rmdir", BaseTree, [R](FileSystem& fs, Handles&) { Ok(fs.Rmdir(R, "b"), "rmdir"); }, ""});
  w.push_back({"rename_across_dirs", BaseTree,
               [R](FileSystem& fs, Handles&) { Ok(fs.Rename(Ino(fs, R, "a"), "f", Ino(fs, R, "b"), "f2", 0), "rename"); },
               ""});
  w.push_back({"rename_over_existing", BaseTree,
               [R](FileSystem& fs, Handles&) { Ok(fs.Rename(R, "big", Ino(fs, R, "a"), "g", 0), "rename"); }, ""});
  w.push_back({"rename_directory", BaseTree,
               [R](FileSystem& fs, Handles&) { Ok(fs.Rename(R, "a", Ino(fs, R, "b"), "a", 0), "rename"); }, ""});
  w.push_back({"rename_exchange", BaseTree,
               [R](FileSystem& fs, Handles&) { Ok(fs.Rename(R, "h", R, "a", RENAME_EXCHANGE), "exchange"); }, ""});
  w.push_back({"link", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 auto e = fs.Link(Ino(fs, R, "h"), Ino(fs, R, "b"), "h-link");
                 if (!e.ok()) ADD_FAILURE() << e.error().Message();
               },
               ""});
  w.push_back({"symlink", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 auto e = fs.Symlink(kRoot, Ino(fs, R, "b"), "s", "../a/f");
                 if (!e.ok()) ADD_FAILURE() << e.error().Message();
               },
               ""});
  w.push_back({"setxattr", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 Ok(fs.SetXattr(kRoot, Ino(fs, R, "big"), "user.k", std::string(300, 'v'), 0), "setxattr");
               },
               ""});
  w.push_back({"setxattr_grows_to_a_run", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 Ok(fs.SetXattr(kRoot, Ino(fs, R, "h"), "user.big", std::string(20000, 'x'), 0), "setxattr");
               },
               ""});
  w.push_back({"removexattr_shrinks_a_run",
               [R](FileSystem& fs, Handles& open) {
                 BaseTree(fs, open);
                 Ok(fs.SetXattr(kRoot, Ino(fs, R, "h"), "user.big", std::string(20000, 'x'), 0), "setxattr");
               },
               [R](FileSystem& fs, Handles&) { Ok(fs.RemoveXattr(kRoot, Ino(fs, R, "h"), "user.big"), "removexattr"); },
               ""});
  w.push_back({"removexattr", BaseTree,
               [R](FileSystem& fs, Handles&) { Ok(fs.RemoveXattr(kRoot, Ino(fs, R, "h"), "user.color"), "removexattr"); },
               ""});
  w.push_back({"set_immutable_prepares_sparse_file", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 Ok(fs.SetXattr(kRoot, Ino(fs, R, "big"), "user.pmemfs.immutable_extents", "1", 0), "set flag");
               },
               ""});
  w.push_back({"set_immutable_64k_moves_extents", BaseTree,
               [R](FileSystem& fs, Handles&) {
                 Ok(fs.SetXattr(kRoot, Ino(fs, Ino(fs, R, "a"), "f"), "user.pmemfs.immutable_extents", "64K", 0),
                    "set flag");
               },
               ""});
  w.push_back({"clear_immutable",
               [R](FileSystem& fs, Handles& open) {
                 BaseTree(fs, open);
                 Ok(fs.SetXattr(kRoot, Ino(fs, R, "big"), "user.pmemfs.immutable_extents", "1", 0), "set flag");
               },
               [R](FileSystem& fs, Handles&) {
                 Ok(fs.SetXattr(kRoot, Ino(fs, R, "big"), "user.pmemfs.immutable_extents", "0", 0), "clear flag");
               },
               ""});
  return w;
}

int Samples() {
  const char* env = std::getenv("PMEMFS_CRASH_SAMPLES");
  return env ? std::max(2, std::atoi(env)) : 24;
}

// Images checked per operation, printed at the end of the run.
std::map<std::string, std::pair<uint64_t, uint64_t>>& Tally() {
  static std::map<std::string, std::pair<uint64_t, uint64_t>> tally;
  return tally;
}

class CrashTest : public ::testing::TestWithParam<Workload> {};

TEST_P(CrashTest, EveryCrashPointRecoversToBeforeOrAfter) {
  const Workload& w = GetParam();
  DriverOptions opts;
  opts.samples_per_fence = Samples();
  opts.seed = std::hash<std::string>{}(w.name);
  DriverResult r = RunCrashPoints(w, opts);
  Tally()[w.name] = {r.images, r.fences};
  EXPECT_GT(r.fences, 0u) << "the operation wrote nothing durable";
  for (const std::string& v : r.violations) ADD_FAILURE() << v;
}

INSTANTIATE_TEST_SUITE_P(Ops, CrashTest, ::testing::ValuesIn(Workloads()),
                         [](const ::testing::TestParamInfo<Workload>& p) { return p.param.name; });

// A region that turns its n-th Drain into a no-op: the journal's ordering is broken, so
// the home locations of a transaction can reach the media before its log.
class DroppedFenceRegion : public pmem::CrashRegion {
 public:
  DroppedFenceRegion(uint64_t size, int drop) : CrashRegion(size), drop_(drop) {}
  void Drain() override {
    if (tracing() && drains_++ == drop_) return;  // counts the traced operation's drains only
    CrashRegion::Drain();
  }

 private:
  int drop_;
  int drains_ = 0;
};

// The harness must catch a broken journal: with fence 1 of a commit skipped (the log is
// not durable before the home locations are written), some crash image is torn.
TEST(CrashHarness, DetectsASkippedJournalFence) {
  Workload w;
  for (const Workload& candidate : Workloads()) {
    if (candidate.name == "rename_across_dirs") w = candidate;
  }
  ASSERT_FALSE(w.name.empty());
  DriverOptions opts;
  opts.samples_per_fence = Samples();
  uint64_t images = 0;
  size_t violations = 0;
  for (int drop = 0; drop < 2; ++drop) {
    opts.make_region = [drop](uint64_t size) -> std::unique_ptr<pmem::CrashRegion> {
      return std::make_unique<DroppedFenceRegion>(size, drop);
    };
    DriverResult r = RunCrashPoints(w, opts);
    images += r.images;
    violations += r.violations.size();
    if (!r.violations.empty()) std::printf("dropped drain %d: first violation: %.300s\n", drop, r.violations[0].c_str());
  }
  EXPECT_GT(violations, 0u) << "the crash driver did not notice a missing journal fence over " << images
                            << " images";
}

// Regression: a truncate releases its blocks in batches after the size commit. Cut short,
// it leaves written blocks (and a dirty EOF-block tail) past EOF; growing the file again,
// by truncate or by a write past EOF, must show zeros there, never the old bytes.
TEST(CrashRegression, InterruptedTruncateExposesNoStaleData) {
  pmem::CrashRegion region(8ull << 20);
  ASSERT_TRUE(extent::Format(region, {}).ok());
  auto mounted = FileSystem::Mount(region, {});
  ASSERT_TRUE(mounted.ok());
  Handles open;
  BaseTree(**mounted, open);
  region.StartTrace();
  SetSize(**mounted, Ino(**mounted, format::kRootIno, "big"), 70000);
  const size_t fences = region.fences();
  (void)mounted->release();  // no clean unmount in the trace
  ASSERT_GE(fences, 4u) << "the truncate should take several transactions";
  int checked = 0;
  for (size_t k = 2; k <= fences; ++k) {
    for (bool by_write : {false, true}) {
      std::vector<uint8_t> img = region.Image(k, [](size_t) { return false; });
      pmem::DramRegion scratch(region.size());
      std::memcpy(scratch.base(), img.data(), img.size());
      auto fs = FileSystem::Mount(scratch, {});
      ASSERT_TRUE(fs.ok()) << fs.error().Message();
      uint64_t big = Ino(**fs, format::kRootIno, "big");
      auto st = (*fs)->GetAttr(big);
      ASSERT_TRUE(st.ok());
      if (st->st_size != 70000) continue;  // the truncate had not committed yet
      if (by_write) Put(**fs, big, 377679, 1, 'e');
      else SetSize(**fs, big, 377680);
      std::string data;
      Ok((*fs)->Read(big, 70000, 377679 - 70000,
                     [&](const std::vector<FileSystem::Piece>& pieces) {
                       for (const auto& p : pieces) {
                         if (p.data) data.append(static_cast<const char*>(p.data), p.len);
                         else data.append(p.len, '\0');
                       }
                     }),
         "read");
      ASSERT_EQ(data.size(), 377679u - 70000);
      EXPECT_EQ(data.find_first_not_of('\0'), std::string::npos)
          << "fence " << k << (by_write ? " (write)" : " (truncate)") << ": old data past the old EOF at offset "
          << 70000 + data.find_first_not_of('\0');
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

class TallyPrinter : public ::testing::EmptyTestEventListener {
  void OnTestProgramEnd(const ::testing::UnitTest& unit) override {
    uint64_t total = 0;
    std::printf("\ncrash images checked per operation (fences in the operation):\n");
    for (const auto& [name, v] : Tally()) {
      std::printf("  %-36s %6llu images  %3llu fences\n", name.c_str(), static_cast<unsigned long long>(v.first),
                  static_cast<unsigned long long>(v.second));
      total += v.first;
    }
    std::printf("  %-36s %6llu images in %.1f s\n", "total", static_cast<unsigned long long>(total),
                unit.elapsed_time() / 1000.0);
  }
};

const bool kRegistered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new TallyPrinter);
  spdlog::set_level(spdlog::level::warn);  // every image's recovery would log at info
  return true;
}();

}  // namespace
}  // namespace pmemfs::crash
