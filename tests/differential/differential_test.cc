// SPDX-License-Identifier: BSD-3-Clause
// The differential tester in CI (README.md in this directory): a fixed time budget of random
// call sequences compared against tmpfs, the concurrent rename-replace workload on pmemfs
// and on tmpfs, and a check that a divergence is found, replayed and minimised.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "differential/concurrent.h"
#include "differential/harness.h"
#include "differential/runner.h"
#include "mount/mount_fixture.h"

namespace pmemfs::difftest {
namespace {

double EnvSeconds(const char* name, double def) {
  const char* v = std::getenv(name);
  return v ? std::atof(v) : def;
}

TEST(Differential, RandomSequencesMatchTmpfs) {
  RunOptions o = OptionsFromEnv(100);
  ::testing::Test::RecordProperty("seed", std::to_string(o.seed));
  std::printf("differential: PMEMFS_DIFF_SEED=%llu PMEMFS_DIFF_SECONDS=%.0f, region %llu MiB\n",
              static_cast<unsigned long long>(o.seed), o.seconds,
              static_cast<unsigned long long>(o.config.region_bytes >> 20));
  std::fflush(stdout);
  RunResult r = RunRandom(o);
  const Stats& s = r.totals;
  std::printf("differential: %llu ops in %.1f s (%.0f ops/s) over %llu epochs: %llu remounts, %llu daemon kills, "
              "%llu tree comparisons, ENOSPC modelled %llu times, short writes %llu times\n",
              static_cast<unsigned long long>(r.ops), r.seconds, static_cast<double>(r.ops) / r.seconds,
              static_cast<unsigned long long>(r.epochs), static_cast<unsigned long long>(s.remounts),
              static_cast<unsigned long long>(s.kills), static_cast<unsigned long long>(s.checks),
              static_cast<unsigned long long>(s.enospc_modelled), static_cast<unsigned long long>(s.short_modelled));
  std::printf("differential: seconds in pmemfs calls %.1f, reference calls %.1f, tree comparisons %.1f, "
              "remounts %.1f, generator's tree view %.1f, setup %.1f\n",
              s.t_pmem, s.t_ref, s.t_check, s.t_remount, s.t_view, s.t_setup);
  std::string sigs;
  for (const auto& sig : r.signatures) sigs += "  " + sig + "\n";
  EXPECT_FALSE(r.failed) << r.signatures.size() << " distinct divergences (reported above):\n" << sigs;
}

// A private tmpfs mount, removed on every exit path of the test.
class TmpfsDir {
 public:
  TmpfsDir() {
    std::string tmpl = BaseDir() + "/difftest." + std::to_string(::getpid()) + ".XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) std::abort();
    dir_ = buf.data();
    mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1g,mode=0755") == 0;
  }
  ~TmpfsDir() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }
  bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// Bugs 4 and 5 of issue 11: readers of a name replaced by rename must see the old or the new
// version, never zeros and never an error. The same workload on tmpfs gives the reference
// (0 bad reads; anything else would be a fault of the workload itself).
TEST(Differential, ReadersSeeOldOrNewAcrossRenameReplace) {
  const double secs = EnvSeconds("PMEMFS_DIFF_CONCURRENT_SECONDS", 12);
  SweepStale();
  ConcurrentCounts ref;
  {
    TmpfsDir t;
    ASSERT_TRUE(t.mounted());
    ref = RunConcurrent(t.dir(), secs, 3);
  }
  std::printf("tmpfs:  %s\n", ref.Summary().c_str());
  std::string top;
  {
    TmpfsDir holder;  // its directory holds the region; the pmemfs mount lives inside it
    testing::PmemfsMount m(64ull << 20, holder.dir());
    ASSERT_TRUE(m.MkfsAndMount()) << m.last_output();
    ConcurrentCounts pm = RunConcurrent(m.mnt(), secs, 3);
    std::printf("pmemfs: %s\n", pm.Summary().c_str());
    EXPECT_EQ(m.Unmount(), 0) << m.last_output();
    testing::CommandResult f = m.Fsck("-n");
    EXPECT_EQ(f.status, 0) << f.output;
    EXPECT_EQ(ref.Bad(), 0u) << "the workload itself is wrong: tmpfs " << ref.Summary();
    EXPECT_EQ(pm.Bad(), 0u) << "pmemfs: " << pm.Summary() << "\ntmpfs:  " << ref.Summary();
    EXPECT_GT(pm.file_reads, 100u);
    EXPECT_GT(pm.link_reads, 100u);
  }
}

Op MakeOp(Kind k, const std::string& path, int slot = -1) {
  Op op;
  op.kind = k;
  op.path = path;
  op.slot = static_cast<int16_t>(slot);
  op.umask = 022;
  return op;
}

// The machinery itself: with the one model that makes tmpfs answer like ext4 switched off
// (tmpfs has no FALLOC_FL_ZERO_RANGE), a sequence holding a ZERO_RANGE fallocate diverges;
// the divergence must be found, replayed and minimised to the three calls it needs.
TEST(Differential, MinimiserReducesADivergenceToTheCallsItNeeds) {
  SweepStale();
  Config cfg;
  cfg.emulate_zero_range = false;
  std::vector<Op> ops;
  ops.push_back(MakeOp(Kind::kMkdir, "d")), ops.back().mode = 0755;
  Op open_f = MakeOp(Kind::kOpen, "d/f", 0);
  open_f.flags = O_RDWR | O_CREAT, open_f.mode = 0644;
  ops.push_back(open_f);
  Op w = MakeOp(Kind::kPwrite, "", 0);
  w.len = 10000, w.seed = 7;
  ops.push_back(w);
  Op open_g = MakeOp(Kind::kOpen, "d/g", 1);
  open_g.flags = O_WRONLY | O_CREAT | O_EXCL, open_g.mode = 0600, open_g.worker = 2;
  ops.push_back(open_g);
  Op w2 = MakeOp(Kind::kWrite, "", 1);
  w2.len = 300, w2.seed = 8, w2.worker = 2;
  ops.push_back(w2);
  ops.push_back(MakeOp(Kind::kStat, "d/f"));
  Op ren = MakeOp(Kind::kRename, "d/g");
  ren.path2 = "d/h";
  ops.push_back(ren);
  Op close1 = MakeOp(Kind::kClose, "", 1);
  close1.worker = 2;
  ops.push_back(close1);
  Op ch = MakeOp(Kind::kChmod, "d/f");
  ch.mode = 0600;
  ops.push_back(ch);
  Op z = MakeOp(Kind::kFallocate, "", 0);
  z.flags = FALLOC_FL_ZERO_RANGE, z.off = 100, z.len = 5000;
  ops.push_back(z);
  ops.push_back(MakeOp(Kind::kUnlink, "d/h"));

  std::optional<Divergence> d = Replay(ops, cfg);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->signature, "result of fallocate (pmemfs ok, reference EOPNOTSUPP)") << d->detail;
  EXPECT_EQ(d->op_index, 9u);
  // With the model on, the same sequence runs clean.
  Config modelled;
  std::optional<Divergence> clean = Replay(ops, modelled);
  EXPECT_FALSE(clean.has_value()) << clean->signature << "\n" << clean->detail;

  int replays = 0;
  std::vector<Op> small = Minimise(ops, d->signature, cfg, 120, &replays);
  std::string list;
  for (const Op& op : small) list += Describe(op) + "\n";
  ASSERT_EQ(small.size(), 3u) << list;
  EXPECT_EQ(small[0].kind, Kind::kMkdir) << list;
  EXPECT_EQ(small[1].kind, Kind::kOpen) << list;
  EXPECT_EQ(small[2].kind, Kind::kFallocate) << list;
  std::printf("minimised in %d replays:\n%s", replays, list.c_str());
}

}  // namespace
}  // namespace pmemfs::difftest
