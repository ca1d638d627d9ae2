#include "extent/journal.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <cstring>


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

Result<std::vector<Journal::PendingRecord>> Journal::Pending() {
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
    uint64_t padded = (uint64_t{r.len} + 7) & ~7ull;
    if (pos + sizeof(r) + padded > h.payload_len || !region_.Contains(r.off, r.len) ||
        r.off < format::kBlockSize || (r.off < off_ + size_ && r.off + r.len > off_)) {
      return Err(EUCLEAN, "journal: record outside metadata");
    }
    const uint8_t* data = payload + pos + sizeof(r);
    out.push_back({r.off, std::vector<uint8_t>(data, data + r.len)});
    pos += sizeof(r) + padded;
  }
  return out;
}

Result<bool> Journal::Recover() {
  PMEMFS_ASSIGN_OR_RETURN(std::vector<PendingRecord> records, Pending());
  if (records.empty()) return false;
  if (region_.read_only()) return Err(EROFS, "journal: replay needed on a read-only region");
  for (const PendingRecord& r : records) region_.CopyFlush(r.off, r.bytes.data(), r.bytes.size());
  region_.Drain();  // replayed state durable before the daemon changes anything
  spdlog::info("journal: replayed transaction {} ({} records)", seq_, records.size());
  return true;
}

Status Journal::Checkpoint() {
  if (region_.read_only()) return Ok();
  JournalHeader h{};
  h.magic = format::kJournalMagic;
  h.seq = ++seq_;
  std::memcpy(h.uuid, uuid_, sizeof(uuid_));
  h.checksum = LogChecksum(h, nullptr);
  region_.CopyFlush(off_, &h, sizeof(h));
  region_.Drain();  // after every earlier commit, which already drained
  return Ok();
}

Status Journal::Commit(Tx& tx) {
  if (tx.empty()) {
    tx.Committed();
    return Ok();
  }
  if (region_.read_only()) return Err(EROFS, "journal: read-only");
  if (tx.log_bytes() > capacity()) return Err(EFBIG, "journal: transaction larger than the log");

  JournalHeader h{};
  h.magic = format::kJournalMagic;
  h.seq = ++seq_;
  std::memcpy(h.uuid, uuid_, sizeof(uuid_));
  h.nrec = static_cast<uint32_t>(tx.records().size());
  h.payload_len = static_cast<uint32_t>(tx.log_bytes());
  buf_.assign(sizeof(h) + tx.log_bytes(), 0);
  uint64_t pos = sizeof(h);
  for (const Tx::Record& r : tx.records()) {
    JournalRecord jr{r.off, r.len, 0};
    std::memcpy(buf_.data() + pos, &jr, sizeof(jr));
    std::memcpy(buf_.data() + pos + sizeof(jr), tx.data(r), r.len);
    pos += sizeof(jr) + ((uint64_t{r.len} + 7) & ~7ull);
  }
  h.checksum = LogChecksum(h, buf_.data() + sizeof(h));
  std::memcpy(buf_.data(), &h, sizeof(h));

  region_.CopyFlush(off_, buf_.data(), buf_.size());
  region_.Drain();  // fence 1: the whole log is durable before any home location changes
  for (const Tx::Record& r : tx.records()) region_.CopyFlush(r.off, tx.data(r), r.len);
  region_.Drain();  // fence 2: home locations durable before the reply and the next log write
  tx.Committed();
  return Ok();
}

}  // namespace pmemfs::extent
