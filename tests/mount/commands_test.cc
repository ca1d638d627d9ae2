// SPDX-License-Identifier: BSD-3-Clause
// The standard tools on a real mount: cp, mv, ln, setfattr/getfattr, truncate, fallocate,
// tar, du, stat, find, rm.
#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {

class CommandsTest : public MountTest {};

TEST_F(CommandsTest, CpMvLn) {
  Ok("head -c 3000000 /dev/urandom > big && printf hello > small");
  Ok("cp big big.copy && cmp big big.copy");
  Ok("mkdir -p tree/a/b && cp small tree/a/b/s && ln -s ../small tree/link && cp -a tree tree2");
  EXPECT_EQ(Ok("readlink tree2/link"), "../small\n");
  EXPECT_EQ(Ok("cat tree2/a/b/s"), "hello");
  Ok("mv big.copy tree2/a/moved && cmp big tree2/a/moved && test ! -e big.copy");
  Ok("mv tree2 tree3 && test -d tree3/a/b");
  Ok("ln small hard && test $(stat -c %h small) = 2 && test $(stat -c %i small) = $(stat -c %i hard)");
  EXPECT_NE(Fails("ln tree hardtodir").find("not allowed"), std::string::npos);
  Ok("ln -sf small soft && test \"$(cat soft)\" = hello");
  EXPECT_NE(Fails("mv tree tree/a/inside").find("tree"), std::string::npos);
}

TEST_F(CommandsTest, SparseCopyKeepsHoles) {
  Ok("truncate -s 64M sparse && printf x | dd of=sparse bs=1 seek=33554432 conv=notrunc status=none");
  Ok("cp --sparse=always sparse sparse.copy && cmp sparse sparse.copy");
  EXPECT_EQ(Ok("stat -c %s sparse.copy"), "67108864\n");
  EXPECT_LE(std::stoi(Ok("stat -c %b sparse.copy")), 16);  // one 4 KiB block, in 512-byte units
  EXPECT_EQ(Ok("du -k sparse.copy | cut -f1"), "4\n");
}

TEST_F(CommandsTest, SetfattrGetfattr) {
  Ok("touch f && setfattr -n user.color -v blue f && setfattr -n user.size -v 0x0102ff f");
  EXPECT_EQ(Ok("getfattr --only-values -n user.color f"), "blue");
  EXPECT_NE(Ok("getfattr -e hex -n user.size f").find("user.size=0x0102ff"), std::string::npos);
  std::string dump = Ok("getfattr -d f");
  EXPECT_NE(dump.find("user.color=\"blue\""), std::string::npos) << dump;
  Ok("setfattr -x user.color f");
  EXPECT_NE(Fails("getfattr -n user.color f").find("No such attribute"), std::string::npos);
  EXPECT_NE(Fails("setfattr -x user.color f").find("No such attribute"), std::string::npos);
  // trusted.* as root, kept separately from user.*
  Ok("setfattr -n trusted.x -v 1 f && getfattr -m trusted -d f | grep -q trusted.x");
}

TEST_F(CommandsTest, TruncateAndFallocate) {
  Ok("printf 0123456789 > f && truncate -s 4 f");
  EXPECT_EQ(Ok("cat f"), "0123");
  Ok("truncate -s 1M f && test $(stat -c %s f) = 1048576");
  EXPECT_EQ(Ok("tr -d '\\0' < f"), "0123");
  Ok("truncate -s -1048572 f && test $(stat -c %s f) = 4");
  Ok("fallocate -l 8M g && test $(stat -c %s g) = 8388608 && test $(stat -c %b g) = 16384");
  Ok("fallocate -n -o 8M -l 4M g && test $(stat -c %s g) = 8388608 && test $(stat -c %b g) = 24576");
  Ok("head -c 8M /dev/urandom > r && fallocate -p -o 1M -l 2M r && test $(stat -c %b r) = 12288");
  Ok("test \"$(dd if=r bs=1M skip=1 count=2 status=none | tr -d '\\0' | wc -c)\" = 0");
  Ok("fallocate -z -o 4M -l 1M r && test $(stat -c %s r) = 8388608");
  Ok("test \"$(dd if=r bs=1M skip=4 count=1 status=none | tr -d '\\0' | wc -c)\" = 0");
  Ok("fallocate -d r");  // dig holes: finds the zero ranges through SEEK_DATA/SEEK_HOLE
}

TEST_F(CommandsTest, TarRoundTripDuFindRm) {
  // A source tree outside the mount, archived, extracted into the mount and compared.
  std::string src = m_.dir() + "/src";
  ASSERT_EQ(Sh("mkdir -p " + src + " && cd " + src +
               " && for d in 1 2 3 4 5; do mkdir -p d$d/sub; for f in 1 2 3 4 5 6 7 8; do"
               " head -c $((d * f * 997)) /dev/urandom > d$d/sub/f$f; done; ln -s sub/f1 d$d/l;"
               " done && mkfifo fifo && chmod 600 d1/sub/f1 && touch -d 2001-02-03 d2/sub/f2")
                .status,
            0);
  Ok("tar -C " + src + " -cf - . | tar -xpf -");
  CommandResult diff = Sh("diff -r --no-dereference -x fifo " + src + " " + m_.mnt());
  EXPECT_EQ(diff.status, 0) << diff.output;
  EXPECT_EQ(Ok("stat -c %a d1/sub/f1"), "600\n");
  EXPECT_EQ(Ok("date -r d2/sub/f2 +%F"), "2001-02-03\n");
  EXPECT_EQ(Ok("find . -type f | wc -l"), "40\n");
  EXPECT_EQ(Ok("find . -type l | wc -l"), "5\n");
  EXPECT_EQ(Ok("find . -type p"), "./fifo\n");
  EXPECT_EQ(Ok("du -sk --apparent-size . >/dev/null && tar -cf - . | tar -tf - | wc -l"), "57\n");  // ., 5 dirs, 5 subdirs, 40 files, 5 links, fifo
  Ok("rm -rf d1 d2 d3 d4 d5 fifo");
  EXPECT_EQ(Ok("ls -A"), "");
  EXPECT_EQ(Ok("stat -c %h ."), "2\n");
}

}  // namespace
}  // namespace pmemfs::testing
