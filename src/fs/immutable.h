// SPDX-License-Identifier: BSD-3-Clause
// Immutable extents (the "daxfile" / S_IOMAP_IMMUTABLE semantics of ../shared/seed): the
// virtual xattrs that set, clear and show a file's flag and its extent map.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace pmemfs::fs {

inline constexpr std::string_view kImmutableXattr = "user.pmemfs.immutable_extents";
inline constexpr std::string_view kExtentsXattr = "user.pmemfs.extents";

inline bool IsVirtualXattr(std::string_view name) { return name == kImmutableXattr || name == kExtentsXattr; }

// Parses a value of user.pmemfs.immutable_extents: "0" (clear, returns 0), "1" (the
// region's alignment `region_align`), or a power-of-two size with an optional K/M/G suffix,
// at least 4 KiB and at most 1 GiB. Returns the alignment in bytes; EINVAL otherwise. A size
// below `region_align` is raised to it: extents must be mappable at the region's mapping
// alignment (2 MiB on a typical device-dax), so "-v 4K" there means "-v 2M".
Result<uint64_t> ParseAlignment(std::string_view value, uint64_t region_align);
// "4K", "2M", "1G", or bytes.
std::string FormatSize(uint64_t bytes);

}  // namespace pmemfs::fs
