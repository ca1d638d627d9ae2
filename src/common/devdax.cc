// SPDX-License-Identifier: BSD-3-Clause
#include "common/devdax.h"

#include <bit>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>

namespace pmemfs::devdax {

Result<uint64_t> EmulatedAlignment() {
  const char* env = std::getenv(kEmulationEnv);
  if (env == nullptr || *env == '\0') return uint64_t{0};
  std::string_view v(env);
  uint64_t mult = 1;
  switch (v.back()) {
    case 'K': case 'k': mult = 1ull << 10; break;
    case 'M': case 'm': mult = 1ull << 20; break;
    case 'G': case 'g': mult = 1ull << 30; break;
    default: break;
  }
  if (mult != 1) v.remove_suffix(1);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n == 0 || n > (1ull << 30) / mult)
    return Err(EINVAL, "PMEMFS_TEST_DEVDAX: not an alignment (4K..1G)");
  n *= mult;
  if (!std::has_single_bit(n) || n < 4096) return Err(EINVAL, "PMEMFS_TEST_DEVDAX: not a power of two from 4K to 1G");
  return n;
}

Result<Rules> RulesFor(bool char_device, uint64_t pmem2_align) {
  Rules r;
  r.align = pmem2_align ? pmem2_align : 4096;
  if (char_device) {
    r.devdax = true;
    return r;
  }
  PMEMFS_ASSIGN_OR_RETURN(uint64_t emulated, EmulatedAlignment());
  if (emulated != 0) {
    r.devdax = r.emulated = true;
    if (emulated > r.align) r.align = emulated;
  }
  return r;
}

Status PrepareGranularity(const Rules& r) {
  if (!r.emulated) return Ok();
  static std::mutex mu;
  std::lock_guard lk(mu);
  // libpmem2 reads the variable at every pmem2_map_new.
  if (std::getenv("PMEM2_FORCE_GRANULARITY") == nullptr) setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 0);
  std::string forced = std::getenv("PMEM2_FORCE_GRANULARITY") ? std::getenv("PMEM2_FORCE_GRANULARITY") : "";
  for (char& c : forced) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (forced == "PAGE") return Err(EINVAL, kGranularityRule);
  return Ok();
}

}  // namespace pmemfs::devdax
