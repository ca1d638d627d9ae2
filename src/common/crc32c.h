// SPDX-License-Identifier: BSD-3-Clause
// CRC-32C (Castagnoli), the checksum of every on-media record that can be torn.
// Debian 12 ships no C/C++ crc32c library, so this is the usual table-free
// SSE4.2 loop with a bytewise table fallback.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pmemfs {

// Extends `crc` (initially 0) over `len` bytes of `data`.
uint32_t Crc32c(const void* data, size_t len, uint32_t crc = 0);

}  // namespace pmemfs
