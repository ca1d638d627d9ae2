// SPDX-License-Identifier: BSD-3-Clause
// Check: the consistency checker behind fsck.pmemfs and the crash tests.
//
// Verifies the superblock and its copies, the journal, every in-use inode (checksum,
// type, flags, references), every extent map (inside the data area, no overlaps within a
// file, no block owned twice anywhere), symlinks and directories as the daemon reads them,
// the block and inode bitmaps against what the inodes really use, the directory tree
// (entries, reachability, "..", link counts), the orphan list and the xattr blocks.
//
// Memory is proportional to the metadata in use (in-use inodes, extents, directory
// entries), never to the region: the region is read in place, and the journal's pending
// transaction and the repairs are an overlay (check_image.h). Without `repair` nothing is
// written. With `repair` every problem found has a repair or a "cannot repair: <why>"
// line; the repairs are committed through the journal, the check runs again until it
// finds nothing (at most four passes), and the journal is left checkpointed.
//
// Repairs, and the decisions behind them (docs/ARCHITECTURE.md, "fsck"):
//   superblock copies          rewritten from the one in use
//   journal                    replayed (-y); a malformed log is discarded
//   state block                rebuilt with an empty orphan list (orphans are then freed)
//   inode: bad checksum        rewritten when the inode is otherwise sane, else cleared
//   inode: invalid type        cleared (its names are removed); unknown flag bits cleared
//   bad block references       dropped (the xattr block, the extent chain from that link)
//   extent outside the data area, or overlapping another in the same file: dropped
//   a block owned twice        the later owner's extent (or chain, or xattr block) is
//                              dropped; owners rank: extent blocks, xattr blocks,
//                              directory data, file data, then the lower inode number.
//                              No copy is made: a block claimed twice after corruption
//                              holds at most one owner's data, and a copy would hand one
//                              user's data to another.
//   directory with a hole or an unwritten extent: unwritten extents dropped, the rest
//                              renumbered; malformed entries removed, the rest kept
//   entry naming a free, cleared or out-of-range inode, a duplicate name, a second name
//   for a directory, a name for the root: removed; wrong type or hash: rewritten
//   symlink without a target block or with size 0 or > 4095: cleared
//   unreachable inodes         the root of each lost subtree is linked into /lost+found
//                              (never a second name for a directory)
//   "..", link counts, block counts: set to what the tree and the maps say
//   orphan list damaged or naming a linked inode: rebuilt; true orphans freed
//   block and inode bitmaps    rewritten from what is in use
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pmem/region.h"

namespace pmemfs::fs {

struct CheckOptions {
  bool repair = false;
  std::function<void(const std::string&)> report;  // one line per problem (and "cannot repair")
  std::function<void(const std::string&)> info;    // what was done besides (journal replayed)
  std::function<void(const char* phase, int percent)> progress;  // may be empty
};

struct CheckResult {
  uint64_t problems = 0;  // found, over all passes
  uint64_t fixed = 0;     // of those, repaired (a later pass no longer finds them)
  bool operational_error = false;
  // e2fsck's convention: 0 clean, 1 errors corrected, 4 errors left, 8 operational error.
  int ExitCode() const {
    if (operational_error) return 8;
    if (problems == 0) return 0;
    return fixed == problems ? 1 : 4;
  }
};

CheckResult Check(pmem::Region& region, const CheckOptions& opts);

}  // namespace pmemfs::fs
