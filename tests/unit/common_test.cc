// SPDX-License-Identifier: BSD-3-Clause
// common: crc32c against published vectors, and the Result/Status type.
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/result.h"
#include "testutil.h"

namespace pmemfs {
namespace {

// RFC 3720 (iSCSI) appendix B.4 test vectors, and the classic check value.
TEST(Crc32c, PublishedVectors) {
  std::vector<uint8_t> buf(32, 0);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x8a9136aau);
  std::fill(buf.begin(), buf.end(), 0xff);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x62a8ab43u);
  for (int i = 0; i < 32; ++i) buf[i] = uint8_t(i);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x46dd794eu);
  for (int i = 0; i < 32; ++i) buf[i] = uint8_t(31 - i);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x113fdb5cu);
  EXPECT_EQ(Crc32c("123456789", 9), 0xe3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

// Chaining over pieces equals one pass, for every split point and unaligned starts
// (exercises the byte-wise head/tail and the 8-byte body of the hardware path).
TEST(Crc32c, ChainingAndAlignment) {
  auto rng = testing::SeededRng();
  std::vector<uint8_t> buf(1000);
  for (auto& b : buf) b = uint8_t(rng());
  for (size_t start = 0; start < 9; ++start) {
    uint32_t whole = Crc32c(buf.data() + start, buf.size() - start);
    for (size_t split = start; split <= buf.size(); split += 37) {
      uint32_t a = Crc32c(buf.data() + start, split - start);
      EXPECT_EQ(Crc32c(buf.data() + split, buf.size() - split, a), whole) << start << "/" << split;
    }
  }
  buf[500] ^= 1;  // a single flipped bit changes the value
  EXPECT_NE(Crc32c(buf.data(), buf.size()), Crc32c(std::vector<uint8_t>(buf).data(), 999));
}

Result<int> Half(int v) {
  if (v % 2) return Error{EINVAL, "odd"};
  return v / 2;
}
Result<int> Quarter(int v) {
  PMEMFS_ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}
Status CheckQuarter(int v) {
  PMEMFS_TRY(Quarter(v));
  return {};
}

TEST(Result, CarriesValueOrErrno) {
  auto ok = Quarter(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);
  auto bad = Quarter(6);  // 6/2 = 3 is odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), EINVAL);
  EXPECT_NE(bad.error().Message().find("odd"), std::string::npos) << bad.error().Message();
  EXPECT_TRUE(CheckQuarter(4).ok());
  EXPECT_EQ(CheckQuarter(5).code(), EINVAL);
}

}  // namespace
}  // namespace pmemfs
