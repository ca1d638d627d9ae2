// SPDX-License-Identifier: BSD-3-Clause
// The power-cut crash driver (issue 3).
//
// For one operation: format a CrashRegion, run the workload's setup, record the visible
// state (pre), trace the operation's stores and fences, record the visible state (post).
// Then for every fence k of the trace and for subsets of the 8-byte words flushed after
// fence k (all subsets when there are at most kEnumerateWords, otherwise a seeded sample
// that always includes "none" and "all"), build the image a power cut would leave and
// check it:
//   1. fsck (fs::Check, which replays the journal) finds no problem;
//   2. the image mounts (recovery, orphan processing);
//   3. the visible state equals pre or post: an operation that returned before the cut is
//      in both, the operation in flight is wholly present or wholly absent;
//   4. after that mount's clean unmount, fsck still finds nothing.
// Data of an in-place overwrite may tear (the write had not returned); a workload marks
// such a file and its bytes may then be old or new, each.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "pmem/crash_region.h"

namespace pmemfs::crash {

struct Workload {
  std::string name;
  // Builds the state before the operation. Handles it opens go into `open`.
  std::function<void(fs::FileSystem&, std::vector<uint64_t>& open)> setup;
  // The operation whose every crash point is checked.
  std::function<void(fs::FileSystem&, std::vector<uint64_t>& open)> op;
  // Path (from the root, "/a/b") whose content may tear bytewise between pre and post.
  std::string tearable;
};
// gtest prints a test's parameter: the name, not the bytes of the std::function members.
inline void PrintTo(const Workload& w, std::ostream* os) { *os << w.name; }

struct DriverOptions {
  uint64_t region_size = 8ull << 20;
  int samples_per_fence = 24;     // subsets drawn when a fence has more than 8 pending words
  uint64_t seed = 1;
  // Builds the region to trace; tests replace it to inject faults (e.g. a dropped fence).
  std::function<std::unique_ptr<pmem::CrashRegion>(uint64_t size)> make_region;
};

struct DriverResult {
  uint64_t images = 0;
  uint64_t fences = 0;
  std::vector<std::string> violations;  // one line each: fence, subset, what was wrong
};

// A canonical text of everything a user can see: tree, types, modes, owners, sizes, link
// counts, times, symlink targets, xattrs (including the immutable-extents flag) and a
// checksum of each file's content. `contents` receives each regular file's bytes by path.
std::string VisibleState(fs::FileSystem& fs, std::map<std::string, std::string>* contents = nullptr);

DriverResult RunCrashPoints(const Workload& w, const DriverOptions& opts);

}  // namespace pmemfs::crash
