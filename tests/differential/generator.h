// SPDX-License-Identifier: BSD-3-Clause
// The seeded generator of operation sequences. It looks at the reference tree and the open
// descriptor slots (through the Harness) to pick paths and descriptors, so that most calls
// act on things that exist, and mixes in calls that must fail (missing names, names too
// long, paths through files, refused flags, foreign uids). It also keeps the pmemfs region
// nearly full with ballast files (written, punched, deleted), schedules remounts, daemon
// kills and tree comparisons. Everything it emits is recorded as an Op, so a sequence can
// be replayed without it.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "differential/harness.h"
#include "differential/op.h"

namespace pmemfs::difftest {

class Generator {
 public:
  explicit Generator(uint64_t seed);
  Op Next(Harness& h);

 private:
  uint64_t U(uint64_t lo, uint64_t hi);  // uniform in [lo, hi]
  bool P(double p);                      // true with probability p
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[U(0, v.size() - 1)]; }

  std::optional<Op> BallastOp(Harness& h);
  std::optional<Op> FdOp(Harness& h, int worker_hint);
  Op PathOp(Harness& h);

  std::string NewName(bool fresh = false);
  std::string LongName(size_t len);
  std::string ExistingPath(Harness& h, int type_filter, bool allow_root);  // type_filter: S_IF* or 0
  std::string NewPath(Harness& h);
  std::string AnyPath(Harness& h, bool allow_root);
  std::string SymlinkTarget(Harness& h, const std::string& link_path);
  std::string XattrName();
  int64_t SizeOf(Harness& h, const std::string& rel);
  int64_t Offset(int64_t size);
  int64_t Length();
  uint32_t Perms();
  void Times(Op* op);
  int Worker();

  std::mt19937_64 rng_;
  std::vector<std::string> names_;  // names handed out, reused so that calls collide
  struct BallastFile {
    std::string name;
    int64_t size = 0;
  };
  std::vector<BallastFile> ballast_;
  int next_ballast_ = 0;
  uint64_t ops_ = 0, next_check_ = 0, next_remount_ = 0, next_phase_ = 0;
  uint64_t low_ = 0, high_ = 0;  // the band of free blocks the ballast keeps pmemfs in
};

}  // namespace pmemfs::difftest
