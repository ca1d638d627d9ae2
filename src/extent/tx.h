// SPDX-License-Identifier: BSD-3-Clause
// Tx: the metadata changes of one operation, staged in DRAM until Journal::Commit makes
// them durable as a whole. Reads through the Tx see its own staged writes (read-your-writes),
// so code can read-modify-write several fields of one structure in one transaction.
//
// Thread-safety: a Tx belongs to one thread. Transactions of different threads may be staged
// at the same time as long as their writes touch disjoint bytes (the filesystem's locks see
// to it) and shared bitmap words change only through bit operations.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>

#include "extent/format.h"
#include "pmem/region.h"

namespace pmemfs::extent {

class Tx {
 public:
  explicit Tx(const pmem::Region& region) : region_(region) {}
  ~Tx();  // runs the abort hooks when the Tx was never committed
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;

  // Stages `len` bytes for region offset `off`. Commit applies the staged writes as if in
  // program order, whatever their overlaps: the result is always the last bytes staged
  // for each offset. (A write of exactly an earlier record's range reuses that record.)
  // REQUIRES: region_.Contains(off, len).
  void Write(uint64_t off, const void* src, uint32_t len);
  template <typename T>
  void Put(uint64_t off, const T& v) {
    Write(off, &v, sizeof(T));
  }
  // Sets (clears) the bits of `mask` in the aligned 8-byte word at `off`, against the
  // word's value when the transaction commits: bitmaps are shared by transactions staged
  // concurrently, each of which changes only its own bits. REQUIRES: off % 8 == 0.
  void SetBits(uint64_t off, uint64_t mask) { bits_[off].set |= mask, bits_[off].clear &= ~mask; }
  void ClearBits(uint64_t off, uint64_t mask) { bits_[off].clear |= mask, bits_[off].set &= ~mask; }
  struct BitOps {
    uint64_t set = 0, clear = 0;
    uint64_t Apply(uint64_t word) const { return (word | set) & ~clear; }
  };
  const std::map<uint64_t, BitOps>& bit_ops() const { return bits_; }

  // Reads region bytes with this transaction's staged writes and bit operations applied.
  void Read(uint64_t off, void* dst, uint32_t len) const;
  template <typename T>
  T Get(uint64_t off) const {
    T v;
    Read(off, &v, sizeof(T));
    return v;
  }

  // Hooks for DRAM state that must follow the outcome: run once, in registration order.
  void OnCommit(std::function<void()> fn) { on_commit_.push_back(std::move(fn)); }
  void OnAbort(std::function<void()> fn) { on_abort_.push_back(std::move(fn)); }

  bool empty() const { return records_.empty() && bits_.empty(); }
  // Bytes this transaction takes in the journal (record headers and padded data; a bit
  // operation becomes one 8-byte record).
  uint64_t log_bytes() const { return log_bytes_ + bits_.size() * (sizeof(format::JournalRecord) + 8); }

  struct Record {
    uint64_t off;
    uint32_t len;
    uint64_t data;  // index into data_
  };
  const std::vector<Record>& records() const { return records_; }
  const uint8_t* data(const Record& r) const { return data_.data() + r.data; }

  // Called by Journal::Commit.
  void Committed();

 private:
  const pmem::Region& region_;
  std::vector<Record> records_;
  std::vector<uint8_t> data_;
  std::unordered_map<uint64_t, size_t> by_off_;  // off -> record index (exact-range merge)
  std::map<uint64_t, BitOps> bits_;              // word offset -> bit operations
  uint64_t log_bytes_ = 0;
  bool done_ = false;
  std::vector<std::function<void()>> on_commit_;
  std::vector<std::function<void()>> on_abort_;
};

}  // namespace pmemfs::extent
