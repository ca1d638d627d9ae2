// Journal: the one crash-atomic mechanism every metadata change goes through.
//
// A redo log that holds one transaction at a time. Commit costs two fences:
//   1. header + records are written to the log area and drained (the header's crc covers
//      all of it, so a torn log is never replayed);
//   2. the records are copied to their home locations and drained.
// The log is not invalidated after step 2: replaying the last transaction again is
// harmless, because its targets are metadata only and a later change to any of them is
// itself a later transaction that overwrites the log first. Recover() replays a valid log.
//
// Thread-safety: Commit requires the caller to serialise commits (the filesystem's
// exclusive lock).
#pragma once

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "extent/format.h"
#include "extent/tx.h"
#include "pmem/region.h"

namespace pmemfs::extent {

class Journal {
 public:
  Journal(pmem::Region& region, const format::Superblock& sb);

  // Validates the log and replays it when it holds a committed transaction. Returns whether
  // a transaction was replayed. EUCLEAN when a valid-crc log is malformed.
  Result<bool> Recover();

  // What Recover would replay, without replaying it (fsck -n applies it as an overlay):
  // the committed transaction's records in log order, or none when the log is empty, torn
  // or a checkpoint. EUCLEAN when a valid-crc log is malformed.
  struct PendingRecord {
    uint64_t off;
    std::vector<uint8_t> bytes;
  };
  Result<std::vector<PendingRecord>> Pending();

  // Makes every write staged in `tx` durable at once, then runs its commit hooks.
  // EFBIG when the transaction exceeds the log (nothing is written). EROFS on a read-only region.
  Status Commit(Tx& tx);

  // Writes an empty committed log (clean shutdown): the next Recover() replays nothing.
  Status Checkpoint();

  uint64_t capacity() const { return size_ - sizeof(format::JournalHeader); }
  uint64_t seq() const { return seq_; }

 private:
  pmem::Region& region_;
  uint64_t off_;
  uint64_t size_;
  uint8_t uuid_[16];
  uint64_t seq_ = 0;
  std::vector<uint8_t> buf_;  // the serialised log, reused between commits
};

}  // namespace pmemfs::extent
