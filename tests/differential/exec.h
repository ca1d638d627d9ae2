// SPDX-License-Identifier: BSD-3-Clause
// Executes one Op on one target (a pmemfs mount or the tmpfs reference), in the calling
// process and with its credentials. Used by the worker processes.
#pragma once

#include <sys/stat.h>

#include <string>
#include <unordered_map>

#include "differential/op.h"

namespace pmemfs::difftest {

struct Side {
  std::string root;                   // absolute path of the tree's root on this target
  bool reference = false;             // the tmpfs side
  bool emulate_zero_range = true;     // reference: FALLOC_FL_ZERO_RANGE as ext4 does it (exec.cc)
  std::string clock_file;             // reference: a file of this worker's, outside the tree (exec.cc)
  std::unordered_map<int, int> fds;   // slot -> descriptor
};

Outcome Execute(const Op& op, Side& side);

// lstat/fstat into a StatInfo (valid=false on failure).
StatInfo ToInfo(const struct stat& st);
// The filesystem's own attributes, not the kernel's cached copy (FUSE keeps attributes for
// the attribute timeout; statx AT_STATX_FORCE_SYNC asks the daemon). `flags`: statx flags
// (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH). False on failure, errno set.
bool SyncStat(int dirfd, const std::string& path, int flags, StatInfo* out);

}  // namespace pmemfs::difftest
