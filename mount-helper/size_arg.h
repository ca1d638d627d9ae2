// SPDX-License-Identifier: BSD-3-Clause
// Command-line helpers shared by the pmemfs commands.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pmemfs::cli {

// "4096", "64K", "256M", "2G", "1T" -> bytes. nullopt when malformed or overflowing.
std::optional<uint64_t> ParseSize(const std::string& s);

}  // namespace pmemfs::cli
