// SPDX-License-Identifier: BSD-3-Clause
// Journal: the one crash-atomic mechanism every metadata change goes through.
//
// A redo log that holds one committed group of transactions at a time. Commit costs two
// fences:
//   1. header + records are written to the log area and drained (the header's checksum
//      covers all of it, so a torn log is never replayed);
//   2. the records are copied to their home locations and drained.
// The log is not invalidated after step 2: replaying the last group again is harmless,
// because its targets are metadata only and a later change to any of them is itself a
// later transaction that overwrites the log first. The exception are the few metadata
// bytes also stored outside the journal (an inode's times on an in-place write): before
// such a store, ForgetLoggedRange makes sure the live log does not hold them. Recover()
// replays a valid log.
//
// Group commit: transactions committed by several threads at once are written as one log
// (their records in arrival order, then the bitmap words their bit operations change,
// resolved against the current words), so N concurrent transactions cost two fences, not
// 2N. A caller returns when its own transaction is durable, and runs its commit hooks in
// its own thread.
//
// Thread-safety: Commit, Checkpoint and ForgetLoggedRange may be called from any thread;
// Recover before any of them. Transactions committed concurrently must write disjoint
// bytes, except through bit operations.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>
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
  // a transaction was replayed. EUCLEAN when a valid-checksum log is malformed.
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
  // EFBIG when the transaction exceeds the log (nothing is written). EROFS on a read-only
  // region.
  Status Commit(Tx& tx);

  // Writes an empty committed log (clean shutdown): the next Recover() replays nothing.
  Status Checkpoint();

  // When the live log holds a record overlapping [off, off+len), replaces it by an empty
  // log (one fence), so that a replay can never put back older bytes over a store made
  // there outside the journal. Cheap when it does not.
  void ForgetLoggedRange(uint64_t off, uint64_t len);

  uint64_t capacity() const { return size_ - sizeof(format::JournalHeader); }
  uint64_t seq() const;
  // Groups and transactions committed (group commit at work when groups < transactions).
  uint64_t groups() const;
  uint64_t transactions() const;

 private:
  struct Waiter {
    Tx* tx;
    Status status;
    bool done = false;
    std::condition_variable cv;
  };
  struct Rec {
    uint64_t off;
    uint32_t len;
    const uint8_t* data;
  };
  // Writes `group` as one log and then home. REQUIRES log_mu_.
  Status WriteGroupLocked(const std::vector<Waiter*>& group);
  Status WriteLogLocked(const std::vector<Rec>& recs, uint64_t bytes);
  Result<std::vector<PendingRecord>> PendingLocked();
  void WriteEmptyLogLocked();

  pmem::Region& region_;
  const uint64_t off_;
  const uint64_t size_;
  uint8_t uuid_[16];

  mutable std::mutex mu_;            // the queue of committers
  std::deque<Waiter*> queue_;        // GUARDED_BY(mu_); the front one leads

  mutable std::mutex log_mu_;        // the log area; taken after mu_ is released
  uint64_t seq_ = 0;                 // GUARDED_BY(log_mu_)
  std::vector<std::pair<uint64_t, uint64_t>> live_;  // record ranges of the live log; GUARDED_BY(log_mu_)
  std::vector<uint8_t> buf_;         // the serialised log, reused; GUARDED_BY(log_mu_)
  uint64_t groups_ = 0, transactions_ = 0;  // GUARDED_BY(log_mu_)
};

}  // namespace pmemfs::extent
