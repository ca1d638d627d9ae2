// SPDX-License-Identifier: BSD-3-Clause
// Golden bytes for every on-media structure: each field gets a distinct value and the
// serialised bytes are compared with a pinned literal, so that any change of format (field
// order, size, padding, endianness) fails here and has to be made deliberately, with a
// version bump. Large structures are pinned as their non-zero spans "offset:hex".
#include <cstring>
#include <string>

#include "extent/format.h"
#include "testutil.h"

namespace pmemfs::format {
namespace {

using pmemfs::testing::Hex;

// "off:hex" for each run of non-zero bytes, space-separated.
template <typename T>
std::string Spans(const T& v) {
  const auto* b = reinterpret_cast<const uint8_t*>(&v);
  std::string out;
  for (size_t i = 0; i < sizeof v;) {
    if (b[i] == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < sizeof v && b[j] != 0) ++j;
    out += (out.empty() ? "" : " ") + std::to_string(i) + ":" + Hex(b + i, j - i);
    i = j;
  }
  return out;
}

TEST(FormatGolden, Superblock) {
  Superblock sb{};
  sb.magic = kMagic;
  sb.major = 0x0102;
  sb.minor = 0x0304;
  sb.block_size = 0x05060708;
  sb.compat = 0x11;
  sb.incompat = 0x12;
  sb.ro_compat = 0x13;
  for (int i = 0; i < 16; ++i) sb.uuid[i] = uint8_t(0xa0 + i);
  sb.region_size = 0x0000010000000000ull;  // 1 TiB: 64-bit offsets
  sb.total_blocks = 0x21;
  sb.state_off = 0x22;
  sb.journal_off = 0x23;
  sb.journal_size = 0x24;
  sb.inode_bitmap_off = 0x25;
  sb.inode_table_off = 0x26;
  sb.inode_count = 0x27;
  sb.block_bitmap_off = 0x28;
  sb.block_bitmap_size = 0x29;
  sb.data_off = 0x2a;
  sb.backup_off = 0x2b;
  sb.mkfs_time = 0x2c;
  std::memcpy(sb.label, "lbl", 3);
  sb.crc = 0xdeadbeef;
  EXPECT_EQ(Spans(sb), "0:504d454d46533031020104030807060511 24:12 32:13 40:a0a1a2a3a4a5a6a7a8a9aaabacadaeaf 61:01 64:21 72:22 80:23 88:24 96:25 104:26 112:27 120:28 128:29 136:2a 144:2b 152:2c 160:6c626c 508:efbeadde");
}

TEST(FormatGolden, StateBlock) {
  StateBlock s{};
  s.magic = kStateMagic;
  s.orphan_head = 0x0102030405060708ull;
  EXPECT_EQ(Hex(s), "50465353544154450807060504030201000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
}

TEST(FormatGolden, JournalHeaderAndRecord) {
  JournalHeader h{};
  h.magic = kJournalMagic;
  h.seq = 0x0102030405060708ull;
  for (int i = 0; i < 16; ++i) h.uuid[i] = uint8_t(0xb0 + i);
  h.nrec = 0x11121314;
  h.payload_len = 0x21222324;
  h.checksum = 0x3132333435363738ull;
  EXPECT_EQ(Hex(h), "504653534a524e4c0807060504030201b0b1b2b3b4b5b6b7b8b9babbbcbdbebf1413121124232221383736353433323100000000000000000000000000000000");
  JournalRecord r{};
  r.off = 0x0000012345678000ull;
  r.len = 0x41424344;
  EXPECT_EQ(Hex(r), "00806745230100004443424100000000");
}

TEST(FormatGolden, Extent) {
  Extent e{0x0102030405060708ull, 0x1112131415161718ull, 0x21222324, kExtentUnwritten};
  EXPECT_EQ(Hex(e), "080706050403020118171615141312112423222101000000");
}

TEST(FormatGolden, Inode) {
  Inode n{};
  n.mode = 0100644;
  n.uid = 0x1001;
  n.gid = 0x1002;
  n.nlink = 0x1003;
  n.flags = kInodeImmutableExtents | kInodeOrphan;
  n.generation = 0x1004;
  n.align_shift = 21;
  n.size = 0x0000020000000001ull;
  n.blocks = 0x1005;
  n.atime = {0x2001, 0x2002, 0};
  n.mtime = {0x2003, 0x2004, 0};
  n.ctime = {0x2005, 0x2006, 0};
  n.btime = {0x2007, 0x2008, 0};
  n.rdev = 0x3001;
  n.parent = 0x3002;
  n.extent_block = 0x3003;
  n.xattr_block = 0x3004;
  n.next_orphan = 0x3005;
  n.inline_extents[0] = {0x41, 0x42, 0x43, 0};
  n.inline_extents[1] = {0x51, 0x52, 0x53, kExtentUnwritten};
  n.inline_extents[2] = {0x61, 0x62, 0x63, 0};
  n.prev_orphan = 0x3006;
  n.data_time_ns = 0x3007;  // format 1.3
  n.crc = 0x70717273;
  EXPECT_EQ(Spans(n), "0:a481 4:0110 8:0210 12:0310 16:03 20:0410 24:15 32:01 37:02 40:0510 48:0120 56:0220 64:0320 72:0420 80:0520 88:0620 96:0720 104:0820 112:0130 120:0230 128:0330 136:0430 144:0530 152:41 160:42 168:43 176:51 184:52 192:53 196:01 200:61 208:62 216:63 224:0630 232:0730 252:73727170");
}

TEST(FormatGolden, ExtentBlock) {
  ExtentBlock b{};
  b.magic = kExtentBlockMagic;
  b.owner = 0x0102;
  b.next = 0x0000000123456000ull;
  b.slots[0] = {0x11, 0x12, 0x13, 0};
  b.slots[kExtentsPerBlock - 1] = {0x21, 0x22, 0x23, kExtentUnwritten};
  EXPECT_EQ(Spans(b), "0:58424c4b 8:0201 17:60452301 32:11 40:12 48:13 4064:21 4072:22 4080:23 4084:01");
}

TEST(FormatGolden, DirentAndXattr) {
  Dirent d{0x0102030405060708ull, 0x11121314, 4, 255, 5, 0};
  EXPECT_EQ(Hex(d), "08070605040302011413121104ff0500");
  EXPECT_EQ(DirentSlots(1), 1u);
  EXPECT_EQ(DirentSlots(48), 1u);
  EXPECT_EQ(DirentSlots(49), 2u);
  XattrBlockHeader x{};
  x.magic = kXattrBlockMagic;
  x.count = 0x11;
  x.used = 0x12;
  x.nblocks = 0x13;
  x.owner = 0x0102030405060708ull;
  EXPECT_EQ(Hex(x), "5841545211000000120000001300000008070605040302010000000000000000");
  XattrEntry e{0x21, 0x01, 0x2223};
  EXPECT_EQ(Hex(e), "21012322");
  EXPECT_EQ(XattrRunSpace(1), 4064u);
  EXPECT_EQ(XattrRunSpace(kMaxXattrBlocks), 64 * 4096 - 32u);
}

}  // namespace
}  // namespace pmemfs::format
