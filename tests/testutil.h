// SPDX-License-Identifier: BSD-3-Clause
// Shared helpers for the unit tests: status assertions, seeded randomness, hex dumps.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

#include "common/result.h"

// ASSERT_OK(expr) / EXPECT_OK(expr): expr is a pmemfs Status or Result<T>; the failure
// message carries the error's errno text and context.
#define PMEMFS_OK_IMPL(fail, expr)                                          \
  do {                                                                      \
    const auto& pmemfs_status_ = (expr);                                    \
    if (!pmemfs_status_.ok()) fail() << #expr << ": " << pmemfs_status_.error().Message(); \
  } while (0)
#define ASSERT_OK(expr) PMEMFS_OK_IMPL(FAIL, expr)
#define EXPECT_OK(expr) PMEMFS_OK_IMPL(ADD_FAILURE, expr)

namespace pmemfs::testing {

// A generator seeded from PMEMFS_TEST_SEED or at random; the seed is recorded with the
// test (visible on failure) so that a failing run can be repeated.
inline std::mt19937_64 SeededRng() {
  const char* env = std::getenv("PMEMFS_TEST_SEED");
  uint64_t seed = env ? std::stoull(env) : std::random_device{}();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::printf("random seed %llu (PMEMFS_TEST_SEED=%llu repeats this run)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return std::mt19937_64(seed);
}

// Lower-case hex of `len` bytes.
inline std::string Hex(const void* p, size_t len) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < len; ++i) out += kDigits[b[i] >> 4], out += kDigits[b[i] & 15];
  return out;
}
template <typename T>
std::string Hex(const T& v) {
  return Hex(&v, sizeof v);
}

}  // namespace pmemfs::testing
