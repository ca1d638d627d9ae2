// SPDX-License-Identifier: BSD-3-Clause
// Worker processes: each runs ops with its own credentials (root, or an unprivileged uid
// with its groups, set with setresuid/setresgid after fork) and holds its own descriptors
// on both targets. The driver talks to each over a socketpair, one request at a time.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "differential/op.h"

namespace pmemfs::difftest {

struct Identity {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups
};

class Workers {
 public:
  // Forks one worker per identity; side 0 is rooted at roots[0] (pmemfs), side 1 at roots[1].
  // Worker w finds its scratch file for timestamps at clock_prefix + w on the reference.
  Workers(const std::vector<Identity>& ids, const std::string& pmem_root, const std::string& ref_root,
          const std::string& clock_prefix = "", bool emulate_zero_range = true);
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  size_t size() const { return workers_.size(); }
  const Identity& identity(int w) const { return workers_[w].id; }
  pid_t pid(int w) const { return workers_[w].pid; }

  // Runs `op` in worker `w` on side 0 (pmemfs) or 1 (reference). False when the worker did
  // not answer within `timeout_ms` (it is then killed) or died.
  bool Exec(int w, int side, const Op& op, Outcome* out, int timeout_ms);
  // Every worker closes every descriptor it holds on `side` (-1: both).
  bool CloseAll(int side, int timeout_ms);

 private:
  struct Worker {
    Identity id;
    pid_t pid = -1;
    int sock = -1;
  };
  bool Call(Worker& w, const std::string& req, std::string* resp, int timeout_ms);
  void Stop(Worker& w);

  std::vector<Worker> workers_;
};

}  // namespace pmemfs::difftest
