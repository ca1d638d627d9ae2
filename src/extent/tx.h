// Tx: the metadata changes of one operation, staged in DRAM until Journal::Commit makes
// them durable as a whole. Reads through the Tx see its own staged writes (read-your-writes),
// so code can read-modify-write several fields of one structure in one transaction.
//
// Thread-safety: a Tx belongs to one thread. Committing requires the filesystem's exclusive
// lock (the journal holds one transaction at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

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
  // Reads region bytes with this transaction's staged writes applied.
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

  bool empty() const { return records_.empty(); }
  // Bytes this transaction takes in the journal (record headers and padded data).
  uint64_t log_bytes() const { return log_bytes_; }

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
  uint64_t log_bytes_ = 0;
  bool done_ = false;
  std::vector<std::function<void()>> on_commit_;
  std::vector<std::function<void()>> on_abort_;
};

}  // namespace pmemfs::extent
