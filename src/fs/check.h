// Check: the consistency checker behind fsck.pmemfs and the crash tests.
//
// Verifies the superblock (falling back to its backup), the journal, every in-use inode
// (checksum, type, flags), every extent map (inside the data area, no overlaps within or
// between files), the block and inode bitmaps against what the inodes really use, the
// directory tree (entries, reachability, "..", link counts), the orphan list and the xattr
// blocks. With `repair`, fixes what can be fixed safely, each fix one journal transaction:
// leaked blocks are freed, blocks in use are marked so, link and block counts are
// corrected, unreachable inodes are linked into /lost+found, and a damaged primary
// superblock is rewritten from the backup.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pmem/region.h"

namespace pmemfs::fs {

struct CheckOptions {
  bool repair = false;
  std::function<void(const std::string&)> report;          // one line per problem or fix
  std::function<void(const char* phase, int percent)> progress;  // may be empty
};

struct CheckResult {
  uint64_t problems = 0;  // found
  uint64_t fixed = 0;     // of those, repaired
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
