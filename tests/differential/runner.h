// SPDX-License-Identifier: BSD-3-Clause
// Drives the tester: epochs of generated operations on fresh targets until a time budget is
// spent; on a divergence, minimises the epoch's sequence (delta debugging: replays of
// subsets on fresh mounts until no op can be removed) and prints the seed and the
// minimised sequence as a list of calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "differential/harness.h"
#include "differential/op.h"

namespace pmemfs::difftest {

struct RunOptions {
  uint64_t seed = 1;             // the first epoch's seed; epoch i uses seed + i
  double seconds = 60;           // time budget of the random run
  uint64_t max_epochs = 0;       // 0: as many as the time budget allows
  uint64_t max_epoch_ops = 4000; // ops per epoch (a failing epoch is what gets minimised)
  double minimise_seconds = 600;
  bool keep_going = false;       // after a divergence, report it and go on with the next epoch
  std::vector<std::string> known;  // signatures containing one of these are reported, not minimised
  Config config;
};

struct RunResult {
  bool failed = false;
  uint64_t ops = 0;       // ops executed (harness actions included)
  uint64_t epochs = 0;
  double seconds = 0;     // running ops (replays for minimisation excluded)
  Stats totals;
  std::string report;     // each distinct divergence, its seed and the minimised sequence
  std::vector<std::string> signatures;  // distinct divergences found
};

RunResult RunRandom(const RunOptions& opts);

// Replays `ops` on fresh targets; the first divergence, or the one Finish() finds. With
// `trace`, each op is appended with its outcome on pmemfs.
std::optional<Divergence> Replay(const std::vector<Op>& ops, const Config& cfg, std::vector<std::string>* trace = nullptr,
                                 std::vector<size_t>* not_run = nullptr);

// Delta debugging: the smallest subsequence of `ops` (1-minimal when the budget allows)
// whose replay still diverges with `signature`.
std::vector<Op> Minimise(std::vector<Op> ops, const std::string& signature, const Config& cfg, double budget_s,
                         int* replays);

// Environment knobs (README): PMEMFS_DIFF_SEED, PMEMFS_DIFF_SECONDS, PMEMFS_DIFF_EPOCH_OPS,
// PMEMFS_DIFF_MINIMISE_SECONDS, PMEMFS_DIFF_REGION_MB, PMEMFS_DIFF_KEEP_GOING, PMEMFS_DIFF_KNOWN
// (';'-separated substrings of signatures already reported: not minimised again).
RunOptions OptionsFromEnv(double default_seconds);

}  // namespace pmemfs::difftest
