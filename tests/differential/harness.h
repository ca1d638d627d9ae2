// SPDX-License-Identifier: BSD-3-Clause
// The two targets side by side: a pmemfs mount (a small region, -o allow_other) and a
// private tmpfs mount (nosuid,nodev like the FUSE mount), each with the tree under test at
// <mount>/t, and the worker processes that run calls on both. Run() executes one Op on
// pmemfs, then on the reference, compares what the two returned, and reports the first
// divergence; it models the one legitimate difference that depends on the pmemfs region
// being small and nearly full (ENOSPC and short writes, see ModelNoSpace).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "differential/compare.h"
#include "differential/op.h"
#include "differential/worker.h"

namespace pmemfs::testing {
class PmemfsMount;
}

namespace pmemfs::difftest {

struct Config {
  uint64_t region_bytes = 32ull << 20;
  int op_timeout_ms = 60000;  // a call that takes longer is reported as a hang
  bool emulate_zero_range = true;  // off only to test the tester (a known difference left unmodelled)
};

struct Divergence {
  std::string signature;  // what kind of failure (minimisation keeps it): "result of write", "tree", "fsck"
  std::string detail;
  size_t op_index = 0;
};

struct SlotInfo {
  int worker = 0;
  std::string path;   // as opened (may have been renamed or unlinked since)
  int64_t flags = 0;
  bool is_dir = false;
  uint32_t mode = 0;       // st_mode when opened
  int pfd = -1, tfd = -1;  // descriptors in the worker (for /proc/PID/fd/N)
};

struct Stats {
  uint64_t ops = 0, enospc_modelled = 0, short_modelled = 0, remounts = 0, kills = 0, checks = 0;
  // Where the time went (seconds): calls on pmemfs, on the reference, tree comparisons,
  // remounts (unmount/kill + fsck + mount + comparison), the generator's view of the tree.
  double t_pmem = 0, t_ref = 0, t_check = 0, t_remount = 0, t_view = 0, t_setup = 0;
};

// Worker identities: 0 and 1 are root (two processes), 2 and 3 unprivileged users sharing
// the supplementary group 1002.
std::vector<Identity> DefaultIdentities();

// The blocks a write, copy or metadata call may find free and still fail with ENOSPC: the
// metadata a change needs (extent-map nodes, a directory block, an xattr block) comes from
// the same pool.
inline constexpr uint64_t kSlackBlocks = 64;

class Harness {
 public:
  explicit Harness(const Config& cfg);
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Formats and mounts pmemfs, mounts the reference, creates the roots, starts the workers.
  std::optional<Divergence> Setup();
  std::optional<Divergence> Run(const Op& op, size_t index);
  // Compares the trees, closes every descriptor, unmounts, runs fsck -n.
  std::optional<Divergence> Finish(size_t index);

  // The generator's view: the reference tree (no xattrs), refreshed when stale.
  const std::vector<Node>& Tree();
  int64_t TreeBytes();  // data bytes in the reference tree's regular files
  uint64_t FreeBlocks();
  uint64_t TotalBlocks() const { return total_blocks_; }
  const std::map<int, SlotInfo>& slots() const { return slots_; }
  const Identity& identity(int w) const { return ids_[static_cast<size_t>(w)]; }
  int workers() const { return static_cast<int>(ids_.size()); }
  const Stats& stats() const { return stats_; }
  std::string DaemonLogTail(size_t lines = 25) const;
  // When set, every op is appended as a readable line with what it returned.
  void set_trace(std::vector<std::string>* trace) { trace_ = trace; }
  // Indices of the ops Run() did not execute on either side (a descriptor slot that was not
  // open in its worker): they change nothing, so a minimiser may drop them.
  const std::vector<size_t>& not_run() const { return not_run_; }

 private:
  std::optional<Divergence> Compare(const Op& op, const Outcome& p, const Outcome& t, size_t index);
  std::optional<Divergence> ModelNoSpace(const Op& op, const Outcome& p, size_t index, bool* handled);
  std::optional<Divergence> Remount(bool kill, size_t index);
  std::optional<Divergence> CheckTrees(const std::string& when, size_t index);
  void Ballast(const Op& op);
  void AfterOp(const Op& op, const Outcome& p, const Outcome& t);
  Divergence Div(const std::string& signature, const std::string& detail, size_t index) const;
  std::string ProcFd(int worker, int fd) const;
  // For fd ops: the descriptors of op.slot (or slot2) in the worker, -1 when unknown.
  int PFd(int slot) const;
  int TFd(int slot) const;
  std::string CompareFile(const std::string& ppath, const std::string& tpath);
  bool FifoIo(const Op& op) const;  // read or write through a FIFO's descriptor

  Config cfg_;
  std::vector<Identity> ids_;
  std::string top_;        // /dev/shm/difftest.PID.XXXXXX: everything of this harness
  std::string ref_mnt_;    // the tmpfs mount
  std::unique_ptr<testing::PmemfsMount> pm_;
  std::unique_ptr<Workers> workers_;
  std::string proot_, troot_, ballast_;
  std::map<int, SlotInfo> slots_;
  std::vector<Node> tree_;
  bool tree_stale_ = true;
  uint64_t tree_ops_ = 0;  // stats_.ops when the view was taken
  int64_t tree_bytes_ = 0;
  uint64_t total_blocks_ = 0, free_blocks_ = 0;
  bool free_stale_ = true;
  Clock clock_;
  Stats stats_;
  std::vector<std::string>* trace_ = nullptr;
  std::vector<size_t> not_run_;
};

bool SizeKeepingCall(const Op& op);
bool NoIdChown(const Op& op);

// Where the regions and mounts go: $PMEMFS_TEST_DIR (scripts/test.sh gives each run one),
// else /dev/shm.
std::string BaseDir();

// Removes what earlier runs that were killed left behind (mounts and directories named
// BaseDir()/difftest.PID.* whose PID is gone).
void SweepStale();

}  // namespace pmemfs::difftest
