// SPDX-License-Identifier: BSD-3-Clause
// The concurrent mode: reader processes against writers that replace a file (write a
// temporary, rename it over the name) and a symlink (`ln -s target tmp; rename tmp link`).
// Every read must see one complete version, old or new: never zeros, never a mix, never an
// error. Run on a directory of any filesystem, so the same workload gives the reference
// counts on tmpfs.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace pmemfs::difftest {

struct ConcurrentCounts {
  uint64_t file_reads = 0, link_reads = 0;      // complete checks done
  uint64_t file_versions = 0, link_swaps = 0;   // replacements the writers made
  uint64_t zeros = 0;                           // a read that returned zero bytes where data was
  uint64_t torn = 0;                            // wrong size, or bytes of no single version
  std::map<std::string, uint64_t> errors;       // failed calls: "open data: EUCLEAN" -> count
  uint64_t Bad() const;
  std::string Summary() const;
};

// Runs `readers` reader processes and two writers in `dir` for `seconds`.
ConcurrentCounts RunConcurrent(const std::string& dir, double seconds, int readers);

}  // namespace pmemfs::difftest
