// SPDX-License-Identifier: BSD-3-Clause
#include "extent/journal.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <cstring>
#include <map>

namespace pmemfs::extent {

using format::JournalHeader;
using format::JournalRecord;

Journal::Journal(pmem::Region& region, const format::Superblock& sb)
    : region_(region), off_(sb.journal_off), size_(sb.journal_size) {
  std::memcpy(uuid_, sb.uuid, sizeof(uuid_));
}

static uint64_t LogChecksum(const JournalHeader& h, const uint8_t* payload) {
  JournalHeader copy = h;
  copy.checksum = 0;
  // The payload's hash seeds the header's: one 64-bit value over both.
  return XXH3_64bits_withSeed(&copy, sizeof(copy), XXH3_64bits(payload, h.payload_len));
}

static uint64_t Padded(uint64_t len) { return (len + 7) & ~7ull; }

uint64_t Journal::seq() const {
  std::lock_guard lk(log_mu_);
  return seq_;
}
uint64_t Journal::groups() const {
  std::lock_guard lk(log_mu_);
  return groups_;
}
uint64_t Journal::transactions() const {
  std::lock_guard lk(log_mu_);
  return transactions_;
}

Result<std::vector<Journal::PendingRecord>> Journal::Pending() {
  std::lock_guard lk(log_mu_);
  return PendingLocked();
}

Result<std::vector<Journal::PendingRecord>> Journal::PendingLocked() {
  std::vector<PendingRecord> out;
  JournalHeader h;
  std::memcpy(&h, region_.base() + off_, sizeof(h));
  if (h.magic != format::kJournalMagic || std::memcmp(h.uuid, uuid_, sizeof(uuid_)) != 0) {
    return out;  // empty, or never written by this format
  }
  seq_ = h.seq;
  if (h.payload_len > capacity()) return out;  // torn or foreign: not a committed log
  const uint8_t* payload = region_.base() + off_ + sizeof(h);
  if (LogChecksum(h, payload) != h.checksum) return out;  // torn: the transaction never committed
  if (h.nrec == 0) return out;                             // a checkpoint: clean shutdown
  // Validate every record before anything is used.
  uint64_t pos = 0;
  for (uint32_t i = 0; i < h.nrec; ++i) {
    if (pos + sizeof(JournalRecord) > h.payload_len) return Err(EUCLEAN, "journal: record overruns log");
    JournalRecord r;
    std::memcpy(&r, payload + pos, sizeof(r));
    if (pos + sizeof(r) + Padded(r.len) > h.payload_len || !region_.Contains(r.off, r.len) ||
        r.off < format::kBlockSize || (r.off < off_ + size_ && r.off + r.len > off_)) {
      return Err(EUCLEAN, "journal: record outside metadata");
    }
    const uint8_t* data = payload + pos + sizeof(r);
    out.push_back({r.off, std::vector<uint8_t>(data, data + r.len)});
    pos += sizeof(r) + Padded(r.len);
  }
  return out;
}

Result<bool> Journal::Recover() {
  std::lock_guard lk(log_mu_);
  PMEMFS_ASSIGN_OR_RETURN(std::vector<PendingRecord> records, PendingLocked());
  if (records.empty()) return false;
  if (region_.read_only()) return Err(EROFS, "journal: replay needed on a read-only region");
  live_.clear();
  for (const PendingRecord& r : records) {
    region_.CopyFlush(r.off, r.bytes.data(), r.bytes.size());
    live_.emplace_back(r.off, r.bytes.size());  // the log stays valid: it is live
  }
  region_.Drain();  // replayed state durable before the daemon changes anything
  spdlog::info("journal: replayed transaction {} ({} records)", seq_, records.size());
  return true;
}

void Journal::WriteEmptyLogLocked() {
  JournalHeader h{};
  h.magic = format::kJournalMagic;
  h.seq = ++seq_;
  std::memcpy(h.uuid, uuid_, sizeof(uuid_));
  h.checksum = LogChecksum(h, nullptr);
  region_.CopyFlush(off_, &h, sizeof(h));
  region_.Drain();  // after every earlier commit, which already drained its home locations
  live_.clear();
}

Status Journal::Checkpoint() {
  if (region_.read_only()) return Ok();
  std::lock_guard lk(log_mu_);
  WriteEmptyLogLocked();
  return Ok();
}

void Journal::ForgetLoggedRange(uint64_t off, uint64_t len) {
  std::lock_guard lk(log_mu_);
  for (const auto& [o, l] : live_) {
    if (o < off + len && off < o + l) {
      WriteEmptyLogLocked();
      return;
    }
  }
}

Status Journal::Commit(Tx& tx) {
  if (tx.empty()) {
    tx.Committed();
    return Ok();
  }
  if (region_.read_only()) return Err(EROFS, "journal: read-only");
  if (tx.log_bytes() > capacity()) return Err(EFBIG, "journal: transaction larger than the log");

  // The data this thread stored for the transaction (blocks it fills before they become
  // reachable) must be durable before the log: a group's fences are issued by its leader,
  // which drains only its own thread's flushes when cache lines are flushed per CPU.
  if (!region_.DrainCoversAllThreads()) region_.Drain();
  Waiter w{&tx, Ok()};
  std::unique_lock lk(mu_);
  queue_.push_back(&w);
  while (!w.done && &w != queue_.front()) w.cv.wait(lk);
  if (!w.done) {
    // The leader: take every transaction queued behind it that fits in the log with it.
    std::vector<Waiter*> group;
    uint64_t bytes = 0;
    for (Waiter* q : queue_) {
      if (bytes + q->tx->log_bytes() > capacity()) break;
      bytes += q->tx->log_bytes();
      group.push_back(q);
    }
    lk.unlock();  // others queue up meanwhile: they form the next group
    Status s;
    {
      std::lock_guard ll(log_mu_);
      s = WriteGroupLocked(group);
    }
    lk.lock();
    for (Waiter* q : group) {
      queue_.pop_front();
      q->status = s;
      q->done = true;
      if (q != &w) q->cv.notify_one();
    }
    if (!queue_.empty()) queue_.front()->cv.notify_one();
  }
  lk.unlock();
  if (w.status.ok()) tx.Committed();
  return w.status;
}

Status Journal::WriteGroupLocked(const std::vector<Waiter*>& group) {
  // Records in arrival order, then each bitmap word changed by bit operations, resolved
  // against its value after those records (the region's, unless a record wrote it).
  std::vector<Rec> recs;
  uint64_t bytes = 0;
  for (const Waiter* q : group) {
    for (const Tx::Record& r : q->tx->records()) {
      recs.push_back({r.off, r.len, q->tx->data(r)});
      bytes += sizeof(JournalRecord) + Padded(r.len);
    }
  }
  std::map<uint64_t, uint64_t> words;
  for (const Waiter* q : group) {
    for (const auto& [off, ops] : q->tx->bit_ops()) {
      auto [it, fresh] = words.emplace(off, 0);
      if (fresh) {
        std::memcpy(&it->second, region_.base() + off, 8);
        for (const Rec& r : recs) {
          uint64_t lo = std::max(off, r.off), hi = std::min(off + 8, r.off + r.len);
          if (lo < hi) std::memcpy(reinterpret_cast<uint8_t*>(&it->second) + (lo - off), r.data + (lo - r.off), hi - lo);
        }
      }
      it->second = ops.Apply(it->second);
    }
  }
  for (const auto& [off, value] : words) {
    recs.push_back({off, 8, reinterpret_cast<const uint8_t*>(&value)});
    bytes += sizeof(JournalRecord) + 8;
  }
  Status s = WriteLogLocked(recs, bytes);
  if (s.ok()) {
    ++groups_;
    transactions_ += group.size();
  }
  return s;
}

Status Journal::WriteLogLocked(const std::vector<Rec>& recs, uint64_t bytes) {
  if (bytes > capacity()) return Err(EFBIG, "journal: transaction larger than the log");
  JournalHeader h{};
  h.magic = format::kJournalMagic;
  h.seq = ++seq_;
  std::memcpy(h.uuid, uuid_, sizeof(uuid_));
  h.nrec = static_cast<uint32_t>(recs.size());
  h.payload_len = static_cast<uint32_t>(bytes);
  buf_.assign(sizeof(h) + bytes, 0);
  uint64_t pos = sizeof(h);
  for (const Rec& r : recs) {
    JournalRecord jr{r.off, r.len, 0};
    std::memcpy(buf_.data() + pos, &jr, sizeof(jr));
    std::memcpy(buf_.data() + pos + sizeof(jr), r.data, r.len);
    pos += sizeof(jr) + Padded(r.len);
  }
  h.checksum = LogChecksum(h, buf_.data() + sizeof(h));
  std::memcpy(buf_.data(), &h, sizeof(h));

  region_.CopyFlush(off_, buf_.data(), buf_.size());
  region_.Drain();  // fence 1: the whole log is durable before any home location changes
  live_.clear();
  for (const Rec& r : recs) {
    region_.CopyFlush(r.off, r.data, r.len);
    live_.emplace_back(r.off, r.len);
  }
  region_.Drain();  // fence 2: home locations durable before the reply and the next log write
  return Ok();
}

}  // namespace pmemfs::extent
