// SPDX-License-Identifier: BSD-3-Clause
// What "the same" means between pmemfs and the tmpfs reference: the stat fields compared and
// the ones Linux lets filesystems differ on (each exclusion says why), file contents compared
// through their data segments, and whole trees (names, types, modes, owners, sizes, link
// counts, hard-link identity, symlink targets, xattrs, contents).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "differential/op.h"

namespace pmemfs::difftest {

// Times a test sets explicitly are far from the run's clock (the generator never picks a
// time within a day of now); times the filesystems set themselves are "now". A time is
// compared exactly when the reference holds an explicit one, and by class otherwise.
struct Clock {
  int64_t start_s = 0;  // the run's start, minus a margin
  bool Recent(int64_t s) const;
};

// Empty when the two stat results agree under the rules; else the fields that differ.
std::string CompareStat(const StatInfo& p, const StatInfo& t, const Clock& clock);

// Compares two open regular files byte for byte, up to their sizes (equal sizes are checked
// by CompareStat). Reads only the union of both files' data segments (SEEK_DATA/SEEK_HOLE),
// so sparse files of any size are cheap; a range both call a hole reads as zeros on both.
// Empty when equal; else where the first difference is.
std::string CompareContent(int pfd, int tfd, int64_t size);

struct Node {
  std::string rel;      // path relative to the root ("" is the root)
  StatInfo st;
  std::string target;   // symlinks
  std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name
};

// Every entry under `root` (not following symlinks), sorted by path. False with `err` set
// when something cannot be read.
// With `sync`, attributes come from the filesystem itself (SyncStat), not the kernel's cache.
bool Walk(const std::string& root, std::vector<Node>* out, std::string* err, bool with_xattrs = true, bool sync = false);

// Empty when the trees agree; else a description of every difference (first few). pmemfs's
// attributes are read from the daemon (SyncStat): what it stores, not what the kernel cached.
std::string CompareTrees(const std::string& proot, const std::string& troot, const Clock& clock);

}  // namespace pmemfs::difftest
