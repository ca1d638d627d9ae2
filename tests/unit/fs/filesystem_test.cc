// SPDX-License-Identifier: BSD-3-Clause
#include "fs/filesystem.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/xattr.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "extent/records.h"
#include "fs/check.h"
#include "pmem/pmem2_region.h"
#include "unit/fs/fs_fixture.h"

namespace pmemfs::fs {
namespace {

using format::kRootIno;

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 g(seed);
  for (auto& c : s) c = static_cast<char>(g());
  return s;
}

void ExpectClean(pmem::Region& r) {
  CheckOptions o;
  std::string report;
  o.report = [&](const std::string& l) { report += l + "\n"; };
  CheckResult res = Check(r, o);
  EXPECT_EQ(res.problems, 0u) << report;
}

TEST_F(FsTest, WriteReadAcrossRemount) {
  uint64_t f = Create(kRootIno, "f");
  std::string data = Pattern(1 << 20, 1);
  Write(f, 0, data);
  Write(f, 4096 * 3 + 17, "patched");
  data.replace(4096 * 3 + 17, 7, "patched");
  EXPECT_EQ(Read(f, 0, data.size()), data);
  Remount();
  EXPECT_EQ(Read(f, 0, data.size() + 100), data);  // clipped at EOF
  EXPECT_EQ(Stat(f).st_size, static_cast<off_t>(data.size()));
  ExpectClean(*region_);
}

TEST_F(FsTest, SparseFilesReadZerosAndTakeNoSpace) {
  uint64_t f = Create(kRootIno, "sparse");
  Write(f, 10 << 20, "tail");
  EXPECT_EQ(Stat(f).st_size, (10 << 20) + 4);
  EXPECT_EQ(Stat(f).st_blocks, 8);  // one 4 KiB block
  EXPECT_EQ(Read(f, 5 << 20, 8), std::string(8, '\0'));
  auto data = fs_->Lseek(f, 0, SEEK_DATA);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, 10u << 20);
  auto hole = fs_->Lseek(f, 0, SEEK_HOLE);
  ASSERT_TRUE(hole.ok());
  EXPECT_EQ(*hole, 0u);
  EXPECT_EQ(fs_->Lseek(f, (10 << 20) + 4, SEEK_DATA).code(), ENXIO);
}

TEST_F(FsTest, TruncateDownZeroesTheTailAndFreesBlocks) {
  uint64_t f = Create(kRootIno, "t");
  Write(f, 0, std::string(3 * 4096, 'x'));
  uint64_t free_before = fs_->Statfs().bfree;
  SetAttrIn a;
  a.mask = kSetSize;
  a.size = 100;
  ASSERT_TRUE(fs_->SetAttr(ctx_, f, a).ok());
  EXPECT_EQ(fs_->Statfs().bfree, free_before + 2);
  a.size = 8192;
  ASSERT_TRUE(fs_->SetAttr(ctx_, f, a).ok());
  EXPECT_EQ(Read(f, 0, 8192), std::string(100, 'x') + std::string(8092, '\0'));
  ExpectClean(*region_);
}

// Regression: releasing a file of more than 256 extents looped forever (the batch limit
// computed its start from an underflowed block budget), hanging unlink and truncate.
TEST_F(FsTest, TruncateAndUnlinkOfAHighlyFragmentedFile) {
  uint64_t f = Create(kRootIno, "frag");
  uint64_t g = Create(kRootIno, "other");
  const uint64_t free_empty = fs_->Statfs().bfree;
  for (uint64_t i = 0; i < 1200; ++i) {  // interleaved: every block of f is its own extent
    Write(f, i * 4096, "f");
    Write(g, i * 4096, "g");
  }
  uint64_t free_before = fs_->Statfs().bfree;
  SetAttrIn in;
  in.mask = kSetSize;
  in.size = 4096 * 100;
  ASSERT_TRUE(fs_->SetAttr(ctx_, f, in).ok());
  EXPECT_GT(fs_->Statfs().bfree, free_before + 1000);
  ASSERT_TRUE(fs_->Unlink(kRootIno, "frag").ok());
  fs_->Forget(f, 1);
  ASSERT_TRUE(fs_->Unlink(kRootIno, "other").ok());
  fs_->Forget(g, 1);
  Remount();
  EXPECT_EQ(fs_->Statfs().bfree, free_empty) << "every data and extent block comes back";
}

// An unlinked file keeps its data while the kernel holds any reference to it: an open
// handle, or a lookup (an open that resolved the name before the unlink or a replacing
// rename can still reach the inode, and must read the old contents, not zeros).
TEST_F(FsTest, UnlinkedFileKeepsItsDataUntilTheLastReference) {
  uint64_t f = Create(kRootIno, "gone");
  Write(f, 0, std::string(64 * 4096, 'y'));
  ASSERT_TRUE(fs_->Open(f, O_RDONLY).ok());
  uint64_t free_before = fs_->Statfs().bfree;
  ASSERT_TRUE(fs_->Unlink(kRootIno, "gone").ok());
  EXPECT_EQ(Read(f, 0, 10), std::string(10, 'y'));
  EXPECT_EQ(fs_->Statfs().bfree, free_before);
  fs_->Release(f);
  // Still looked up (the reference from Mknod): a late open finds the data.
  ASSERT_TRUE(fs_->Open(f, O_RDONLY).ok());
  EXPECT_EQ(Read(f, 64 * 4096 - 10, 10), std::string(10, 'y'));
  fs_->Release(f);
  EXPECT_EQ(fs_->Statfs().bfree, free_before);
  fs_->Forget(f, 1);  // the kernel's last reference
  EXPECT_GE(fs_->Statfs().bfree, free_before + 64);
  EXPECT_EQ(fs_->GetAttr(f).code(), ESTALE);
  ExpectClean(*region_);
}

// The same for a file and a symlink replaced by rename and never opened.
TEST_F(FsTest, ReplacedFileAndSymlinkKeepTheirContentsUntilForgotten) {
  uint64_t old_file = Create(kRootIno, "data");
  Write(old_file, 0, std::string(3 * 4096, 'o'));
  Write(Create(kRootIno, "data.tmp"), 0, std::string(4096, 'n'));
  auto old_link = fs_->Symlink(ctx_, kRootIno, "current", "releases/v1");
  ASSERT_TRUE(old_link.ok());
  ASSERT_TRUE(fs_->Symlink(ctx_, kRootIno, "current.tmp", "releases/v2").ok());
  ASSERT_TRUE(fs_->Rename(kRootIno, "data.tmp", kRootIno, "data", 0).ok());
  ASSERT_TRUE(fs_->Rename(kRootIno, "current.tmp", kRootIno, "current", 0).ok());
  EXPECT_EQ(Read(old_file, 0, 3 * 4096), std::string(3 * 4096, 'o'));
  auto target = fs_->Readlink(old_link->ino);
  ASSERT_TRUE(target.ok()) << target.error().Message();
  EXPECT_EQ(*target, "releases/v1");
  fs_->Forget(old_file, 1);
  fs_->Forget(old_link->ino, 1);
  EXPECT_EQ(fs_->GetAttr(old_file).code(), ESTALE);
  EXPECT_EQ(fs_->GetAttr(old_link->ino).code(), ESTALE);
  ExpectClean(*region_);
}

// Found by the differential tester (seed 3331910127): the daemon remembers which inode owns
// which run of blocks (to refuse a map that names another file's blocks), recorded when a
// map is loaded. A freed inode's number, reused by a new file that took part of the old
// run, made every other map naming another block of that run look like an overlap:
// readlink of a new symlink answered EUCLEAN on a clean filesystem.
TEST_F(FsTest, ABlockOfAFreedRunIsNotClaimedByTheFileThatReusedItsNumber) {
  Format(32ull << 20);
  uint64_t a = Create(kRootIno, "a");
  Write(a, 0, std::string(8 << 20, 'a'));
  Remount();
  EXPECT_EQ(Read(a, 0, 1), "a");  // a's map is loaded again: its run is recorded as a's
  ASSERT_TRUE(fs_->Unlink(kRootIno, "a").ok());
  uint64_t b = Create(kRootIno, "b");
  ASSERT_EQ(b, a) << "the test needs the freed number reused";
  Write(b, 0, std::string(4 << 20, 'b'));  // the first half of a's old run
  auto s = fs_->Symlink(ctx_, kRootIno, "s", std::string(130, 's'));  // a block of the second half
  ASSERT_TRUE(s.ok());
  fs_->Forget(s->ino, 1);  // the kernel forgets it; the next readlink loads its map
  auto target = fs_->Readlink(s->ino);
  ASSERT_TRUE(target.ok()) << target.error().Message();
  EXPECT_EQ(*target, std::string(130, 's'));
  ExpectClean(*region_);
}

TEST_F(FsTest, OrphansAreFreedAtMount) {
  uint64_t f = Create(kRootIno, "orphan");
  Write(f, 0, std::string(16 * 4096, 'z'));
  ASSERT_TRUE(fs_->Open(f, O_RDONLY).ok());
  ASSERT_TRUE(fs_->Unlink(kRootIno, "orphan").ok());
  uint64_t free_open = fs_->Statfs().bfree;
  // A "crash": the region is left as it is, with the file still open.
  auto copy = std::make_unique<pmem::DramRegion>(region_->size());
  std::memcpy(copy->base(), region_->base(), region_->size());
  fs_.reset();
  region_ = std::move(copy);
  Remount();
  EXPECT_EQ(fs_->Statfs().bfree, free_open + 16);
  EXPECT_EQ(fs_->GetAttr(f).code(), ESTALE);
  ExpectClean(*region_);
}

TEST_F(FsTest, RenameSemantics) {
  uint64_t a = Mkdir(kRootIno, "a");
  uint64_t b = Mkdir(a, "b");
  Create(kRootIno, "x");
  uint64_t y = Create(kRootIno, "y");
  EXPECT_EQ(fs_->Rename(kRootIno, "a", b, "inside", 0).code(), EINVAL);
  EXPECT_EQ(fs_->Rename(kRootIno, "x", kRootIno, "y", RENAME_NOREPLACE).code(), EEXIST);
  EXPECT_EQ(fs_->Rename(kRootIno, "x", kRootIno, "a", 0).code(), EISDIR);
  EXPECT_EQ(fs_->Rename(a, "b", kRootIno, "x", 0).code(), ENOTDIR);
  ASSERT_TRUE(fs_->Rename(kRootIno, "x", kRootIno, "y", 0).ok());  // replaces y
  EXPECT_EQ(fs_->Lookup(kRootIno, "x").code(), ENOENT);
  fs_->Forget(y, 1);
  ASSERT_TRUE(fs_->Rename(kRootIno, "y", a, "y2", RENAME_EXCHANGE).code() == ENOENT);
  ASSERT_TRUE(fs_->Rename(kRootIno, "y", a, "b", RENAME_EXCHANGE).ok());
  EXPECT_TRUE(S_ISDIR(fs_->Lookup(kRootIno, "y")->attr.st_mode));
  EXPECT_TRUE(S_ISREG(fs_->Lookup(a, "b")->attr.st_mode));
  EXPECT_EQ(Stat(kRootIno).st_nlink, 4u);  // ., .., a, y(dir)
  EXPECT_EQ(Stat(a).st_nlink, 2u);
  ExpectClean(*region_);
}

TEST_F(FsTest, LinkCountsAndRmdir) {
  uint64_t d = Mkdir(kRootIno, "d");
  uint64_t f = Create(d, "f");
  ASSERT_TRUE(fs_->Link(f, kRootIno, "f2").ok());
  EXPECT_EQ(Stat(f).st_nlink, 2u);
  EXPECT_EQ(fs_->Rmdir(kRootIno, "d").code(), ENOTEMPTY);
  ASSERT_TRUE(fs_->Unlink(d, "f").ok());
  ASSERT_TRUE(fs_->Rmdir(kRootIno, "d").ok());
  EXPECT_EQ(Stat(f).st_nlink, 1u);
  EXPECT_EQ(Stat(kRootIno).st_nlink, 2u);
  ExpectClean(*region_);
}

TEST_F(FsTest, FallocateModes) {
  uint64_t f = Create(kRootIno, "fa");
  ASSERT_TRUE(fs_->Fallocate(f, 0, 0, 8 * 4096).ok());
  EXPECT_EQ(Stat(f).st_size, 8 * 4096);
  EXPECT_EQ(Read(f, 0, 4096), std::string(4096, '\0'));
  ASSERT_TRUE(fs_->Fallocate(f, FALLOC_FL_KEEP_SIZE, 8 * 4096, 4096).ok());
  EXPECT_EQ(Stat(f).st_size, 8 * 4096);
  EXPECT_EQ(Stat(f).st_blocks, 9 * 8);
  Write(f, 0, std::string(8 * 4096, 'q'));
  ASSERT_TRUE(fs_->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 3 * 4096).ok());
  std::string got = Read(f, 0, 8 * 4096);
  EXPECT_EQ(got.substr(0, 100), std::string(100, 'q'));
  EXPECT_EQ(got.substr(100, 3 * 4096), std::string(3 * 4096, '\0'));
  EXPECT_EQ(got.substr(100 + 3 * 4096), std::string(8 * 4096 - 100 - 3 * 4096, 'q'));
  ASSERT_TRUE(fs_->Fallocate(f, FALLOC_FL_ZERO_RANGE, 6 * 4096, 3 * 4096).ok());
  EXPECT_EQ(Stat(f).st_size, 9 * 4096);
  EXPECT_EQ(Read(f, 6 * 4096, 3 * 4096), std::string(3 * 4096, '\0'));
  EXPECT_EQ(fs_->Fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 1).code(), EOPNOTSUPP);
  ExpectClean(*region_);
}

// A write larger than the free space is cut short at a block boundary (as on Linux
// filesystems); once nothing fits, ENOSPC changes nothing.
TEST_F(FsTest, WriteOfMoreThanFitsIsShortThenEnospcChangesNothing) {
  Format(8ull << 20);
  uint64_t f = Create(kRootIno, "fill");
  Write(f, 0, "head");
  uint64_t free_blocks = fs_->Statfs().bfree;
  std::string big((free_blocks + 10) * 4096, 'e');
  auto r = fs_->Write(f, 100, big.data(), big.size());
  ASSERT_TRUE(r.ok()) << r.error().Message();
  EXPECT_EQ(*r, free_blocks * 4096 + 4096 - 100) << "every free block filled, ending at a block boundary";
  EXPECT_EQ(fs_->Statfs().bfree, 0u);
  EXPECT_EQ(Stat(f).st_size, 100 + static_cast<off_t>(*r));
  EXPECT_EQ(Read(f, 0, 4), "head");
  EXPECT_EQ(Read(f, 100 + *r - 3, 10), "eee");
  r = fs_->Write(f, Stat(f).st_size, big.data(), 4096);
  EXPECT_EQ(r.code(), ENOSPC);
  EXPECT_EQ(Stat(f).st_size, 100 + static_cast<off_t>(free_blocks * 4096 + 4096 - 100));
  Write(f, 0, std::string(4096, 'k'));  // overwrites still work
  ExpectClean(*region_);
}

// The same on a fragmented region: every free block alone, so the write's extents need
// extent blocks the first estimate did not count; the write is shortened until it fits.
TEST_F(FsTest, ShortWriteOnAFragmentedRegion) {
  extent::MkfsOptions opts;
  opts.inode_count = 4000;
  Format(16ull << 20, opts);
  std::vector<uint64_t> files;
  for (int i = 0;; ++i) {
    auto e = fs_->Mknod(ctx_, kRootIno, "f" + std::to_string(i), S_IFREG | 0644, 0);
    ASSERT_TRUE(e.ok());
    std::string b(4096, 'x');
    auto r = fs_->Write(e->ino, 0, b.data(), b.size());
    if (!r.ok()) break;
    files.push_back(e->ino);
  }
  for (size_t i = 0; i < files.size(); i += 2) ASSERT_TRUE(fs_->Unlink(kRootIno, "f" + std::to_string(i)).ok());
  for (size_t i = 0; i < files.size(); i += 2) fs_->Forget(files[i], 1);
  uint64_t free_blocks = fs_->Statfs().bfree;
  ASSERT_GT(free_blocks, 1000u);
  uint64_t f = Create(kRootIno, "big");
  std::string big(free_blocks * 4096, 'b');
  auto r = fs_->Write(f, 0, big.data(), big.size());
  ASSERT_TRUE(r.ok()) << r.error().Message();
  EXPECT_LT(*r, big.size());
  EXPECT_GT(*r, big.size() * 9 / 10);
  EXPECT_EQ(*r % 4096, 0u);
  EXPECT_EQ(Read(f, 0, *r), std::string(*r, 'b'));
  ExpectClean(*region_);
}

// Found by the differential tester (seed 2635021927): copy_file_range that filled the free
// space in its first chunk went on with the next, got ENOSPC and answered it, although the
// first chunk was copied (here: zeros from a hole over the file's data). As write(2) and
// Linux's splice-based copy, it answers what it copied and stops at a short chunk.
TEST_F(FsTest, CopyFileRangeThatDoesNotFitIsShort) {
  Format(8ull << 20);
  uint64_t f = Create(kRootIno, "f");
  const std::string data = Pattern(185029, 3);
  Write(f, 0, data);
  SetAttrIn a;
  a.mask = kSetSize;
  a.size = 1016904534401ull;
  ASSERT_TRUE(fs_->SetAttr(ctx_, f, a).ok());
  uint64_t fill = Create(kRootIno, "fill");
  ASSERT_TRUE(fs_->Fallocate(fill, 0, 0, (fs_->Statfs().bfree - 3) * 4096).ok());
  auto r = fs_->CopyFileRange(f, 413914100049ull, f, 0, 830396, ctx_);
  ASSERT_TRUE(r.ok()) << r.error().Message();
  EXPECT_GE(*r, 46u * 4096) << "the blocks already allocated fit";
  EXPECT_LT(*r, 830396u);
  EXPECT_EQ(*r % 4096, 0u);
  EXPECT_TRUE(Read(f, 0, *r) == std::string(*r, '\0'));
  EXPECT_EQ(fs_->CopyFileRange(f, 413914100049ull, f, *r, 830396, ctx_).code(), ENOSPC);
  EXPECT_TRUE(Read(f, *r, 4096) == std::string(4096, '\0'));
  ExpectClean(*region_);
}

// Found by the differential tester (seed 1685647240): a punch hole or zero range that
// failed (ENOSPC for the extent block a split needs) had already zeroed the partial blocks
// at its ends. A failed fallocate changes nothing.
TEST_F(FsTest, FallocateThatFailsChangesNoByte) {
  Format(8ull << 20);
  uint64_t f = Create(kRootIno, "f");
  const std::string data = Pattern(3 * 4096, 7);
  Write(f, 0, data);  // one extent of 3 blocks, then two more: the 3 inline slots are full
  Write(f, 4 * 4096, Pattern(4096, 8));
  Write(f, 6 * 4096, Pattern(4096, 9));
  uint64_t fill = Create(kRootIno, "fill");
  ASSERT_TRUE(fs_->Fallocate(fill, 0, 0, fs_->Statfs().bfree * 4096).ok());
  ASSERT_EQ(fs_->Statfs().bfree, 0u);
  // Removing block 1 splits the first extent: a fourth slot, an extent block, no space.
  EXPECT_EQ(fs_->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 2 * 4096 - 100 + 50).code(), ENOSPC);
  EXPECT_TRUE(Read(f, 0, data.size()) == data) << "punch hole";
  EXPECT_EQ(fs_->Fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 100, 2 * 4096 - 100 + 50).code(), ENOSPC);
  EXPECT_TRUE(Read(f, 0, data.size()) == data) << "zero range";
  // Inside one block nothing is split: it works on a full filesystem.
  ASSERT_TRUE(fs_->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 50).ok());
  EXPECT_TRUE(Read(f, 100, 50) == std::string(50, '\0'));
  EXPECT_TRUE(Read(f, 150, 4096) == data.substr(150, 4096));
  ExpectClean(*region_);
}

// Found by the differential tester (seed 306707643): xattrs are rewritten out of place, so
// on a full filesystem removexattr answered ENOSPC. A change that does not grow the run is
// written over the old run through the journal instead.
TEST_F(FsTest, RemovexattrOnAFullFilesystem) {
  Format(8ull << 20);
  uint64_t f = Create(kRootIno, "f");
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.a", std::string(100, 'a'), 0).ok());
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.b", std::string(5000, 'b'), 0).ok());  // a run of 2 blocks
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.c", std::string(10, 'c'), 0).ok());
  uint64_t fill = Create(kRootIno, "fill");
  ASSERT_TRUE(fs_->Fallocate(fill, 0, 0, fs_->Statfs().bfree * 4096).ok());
  ASSERT_EQ(fs_->Statfs().bfree, 0u);
  ASSERT_TRUE(fs_->RemoveXattr(ctx_, f, "user.b").ok());  // 2 blocks -> 1
  EXPECT_EQ(fs_->Statfs().bfree, 1u);
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.a", "short", 0).ok());  // a smaller value, same length of run
  ASSERT_TRUE(fs_->RemoveXattr(ctx_, f, "user.c").ok());
  Remount();
  EXPECT_EQ(*fs_->GetXattr(f, "user.a"), "short");
  EXPECT_EQ(fs_->GetXattr(f, "user.b").code(), ENODATA);
  EXPECT_EQ(fs_->ListXattr(f)->size(), 1u);
  ASSERT_TRUE(fs_->RemoveXattr(ctx_, f, "user.a").ok());
  EXPECT_EQ(fs_->Statfs().bfree, 2u);
  ExpectClean(*region_);
}

// Found by the differential tester (seed 20261129): the in-place rewrite was limited to a
// quarter of the journal (16 blocks with the 256 KiB journal of a small region), so removing
// one of several large values on a full filesystem still answered ENOSPC.
TEST_F(FsTest, RemovexattrOfALargeListOnAFullFilesystem) {
  Format(8ull << 20);
  uint64_t f = Create(kRootIno, "f");
  for (const char* name : {"user.a", "user.b", "user.c"})
    ASSERT_TRUE(fs_->SetXattr(ctx_, f, name, std::string(60000, name[5]), 0).ok());
  uint64_t fill = Create(kRootIno, "fill");
  ASSERT_TRUE(fs_->Fallocate(fill, 0, 0, fs_->Statfs().bfree * 4096).ok());
  ASSERT_EQ(fs_->Statfs().bfree, 0u);
  ASSERT_TRUE(fs_->RemoveXattr(ctx_, f, "user.c").ok());  // a run of 44 blocks -> 30
  EXPECT_GT(fs_->Statfs().bfree, 10u);
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.a", "short", 0).ok());
  Remount();
  EXPECT_EQ(*fs_->GetXattr(f, "user.a"), "short");
  EXPECT_EQ(*fs_->GetXattr(f, "user.b"), std::string(60000, 'b'));
  EXPECT_EQ(fs_->GetXattr(f, "user.c").code(), ENODATA);
  ExpectClean(*region_);
}

TEST_F(FsTest, Xattrs) {
  uint64_t f = Create(kRootIno, "x");
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.a", "1", 0).ok());
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.a", "2", XATTR_CREATE).code(), EEXIST);
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.b", "2", XATTR_REPLACE).code(), ENODATA);
  // Both flags: whichever condition fails (ext4, tmpfs; differential tester seed 118096489).
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.a", "2", XATTR_CREATE | XATTR_REPLACE).code(), EEXIST);
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.b", "2", XATTR_CREATE | XATTR_REPLACE).code(), ENODATA);
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "bogus.a", "2", 0).code(), EOPNOTSUPP);
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.", "2", 0).code(), EINVAL);
  EXPECT_EQ(fs_->GetXattr(f, "trusted.").code(), EINVAL);
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.huge", std::string(65537, 'v'), 0).code(), E2BIG);
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.b", std::string(1000, 'v'), 0).ok());
  EXPECT_EQ(Stat(f).st_blocks, 8);  // one block of 4 KiB
  // Values up to XATTR_SIZE_MAX, several of them: the run grows over several blocks.
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.max", std::string(65536, 'm'), 0).ok());
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.big", std::string(70000 - 65536, 'g'), 0).ok());
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.max2", std::string(65536, 'n'), 0).ok());
  EXPECT_EQ(Stat(f).st_blocks, 8 * 34);
  // 256 KiB per inode: the fourth 64 KiB value does not fit.
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.max3", std::string(65536, 'o'), 0).ok());
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.max4", std::string(65536, 'p'), 0).code(), ENOSPC);
  Remount();
  EXPECT_EQ(*fs_->GetXattr(f, "user.a"), "1");
  EXPECT_EQ(*fs_->GetXattr(f, "user.max"), std::string(65536, 'm'));
  EXPECT_EQ(*fs_->GetXattr(f, "user.max3"), std::string(65536, 'o'));
  EXPECT_EQ(fs_->ListXattr(f)->size(), 6u);
  for (const char* n : {"user.max", "user.max2", "user.max3", "user.big", "user.a"})
    ASSERT_TRUE(fs_->RemoveXattr(ctx_, f, n).ok()) << n;
  EXPECT_EQ(Stat(f).st_blocks, 8);
  ASSERT_TRUE(fs_->RemoveXattr(ctx_, f, "user.b").ok());
  EXPECT_EQ(fs_->GetXattr(f, "user.a").code(), ENODATA);
  EXPECT_EQ(Stat(f).st_blocks, 0);  // the run went with the last xattr
  ExpectClean(*region_);
}

TEST_F(FsTest, ImmutableExtentsPrepareAndRefuse) {
  uint64_t f = Create(kRootIno, "imm");
  Write(f, 200 * 1024, "end");  // sparse, not 64K-aligned as a whole
  Ctx user{1000, 1000, 1, [](uint32_t, int) { return false; }};  // holds no capability
  EXPECT_EQ(fs_->SetXattr(user, f, "user.pmemfs.immutable_extents", "1", 0).code(), EPERM);
  EXPECT_EQ(fs_->SetXattr(ctx_, f, "user.pmemfs.immutable_extents", "3K", 0).code(), EINVAL);
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.pmemfs.immutable_extents", "64K", 0).ok());
  EXPECT_EQ(*fs_->GetXattr(f, "user.pmemfs.immutable_extents"), "64K");
  auto lease = fs_->Lease(f, false);
  ASSERT_TRUE(lease.ok());
  uint64_t covered = 0;
  for (const auto& e : lease->extents) {
    EXPECT_EQ(e.region_off % (64 << 10), e.file_off % (64 << 10));
    covered += e.len;
  }
  EXPECT_GE(covered, 256u << 10);  // EOF rounded up to 64K, all allocated
  EXPECT_EQ(Read(f, 0, 10), std::string(10, '\0'));
  EXPECT_EQ(Read(f, 200 * 1024, 3), "end");
  SetAttrIn a;
  a.mask = kSetSize;
  a.size = 0;
  EXPECT_EQ(fs_->SetAttr(ctx_, f, a).code(), EPERM);
  EXPECT_EQ(fs_->Write(f, 300 * 1024, "x", 1).code(), EPERM);
  EXPECT_EQ(fs_->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096).code(), EPERM);
  EXPECT_EQ(fs_->Unlink(kRootIno, "imm").code(), EPERM);
  Write(f, 10, "in place");
  EXPECT_TRUE(fs_->Fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 4096).ok());
  ASSERT_TRUE(fs_->Lease(f, true).ok());
  EXPECT_EQ(fs_->RemoveXattr(ctx_, f, "user.pmemfs.immutable_extents").code(), EBUSY);
  fs_->DropLease(f);
  Remount();
  EXPECT_EQ(*fs_->GetXattr(f, "user.pmemfs.immutable_extents"), "64K");
  ASSERT_TRUE(fs_->RemoveXattr(ctx_, f, "user.pmemfs.immutable_extents").ok());
  EXPECT_TRUE(fs_->Unlink(kRootIno, "imm").ok());
  ExpectClean(*region_);
}

// PMEMFS_IOC_TOUCH: what a write does to the inode, for bytes a client wrote in userspace.
TEST_F(FsTest, TouchOfAFlaggedFileSetsTimesAndDropsSetId) {
  uint64_t f = Create(kRootIno, "t");
  Write(f, 0, std::string(8192, 'x'));
  Ctx user{1000, 1000, 1, [](uint32_t, int) { return false; }};  // no CAP_FSETID
  EXPECT_EQ(fs_->Touch(ctx_, f).code(), EINVAL) << "only files with immutable extents";
  ASSERT_TRUE(fs_->SetXattr(ctx_, f, "user.pmemfs.immutable_extents", "1", 0).ok());
  SetAttrIn a;
  a.mask = kSetMode | kSetMtime;
  a.mode = S_IFREG | 04755;
  a.mtime = timespec{1000, 0};
  ASSERT_TRUE(fs_->SetAttr(ctx_, f, a).ok());
  ASSERT_TRUE(fs_->Touch(ctx_, f).ok());  // the owner with every capability: set-id stays
  struct stat st = Stat(f);
  EXPECT_GT(st.st_mtim.tv_sec, 1000);
  EXPECT_EQ(st.st_ctim.tv_sec, st.st_mtim.tv_sec);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  ASSERT_TRUE(fs_->Touch(user, f).ok());
  EXPECT_EQ(Stat(f).st_mode & 07777, 0755u) << "set-user-ID dropped, as a write by the user";
  Remount();
  EXPECT_GT(Stat(f).st_mtim.tv_sec, 1000) << "durable";
  ExpectClean(*region_);
}

TEST_F(FsTest, CorruptInodeIsReportedNotTrusted) {
  uint64_t f = Create(kRootIno, "c");
  Create(kRootIno, "later");  // so that the journal's last transaction is not f's creation
  const auto& sb = fs_->superblock();
  region_->base()[extent::InodeOff(sb, f) + 40] ^= 0xff;  // blocks field, crc now wrong
  EXPECT_EQ(fs_->GetAttr(f).code(), EUCLEAN);
  EXPECT_EQ(fs_->Lookup(kRootIno, "c").code(), EUCLEAN);
  CheckOptions o;
  EXPECT_GT(Check(*region_, o).problems, 0u);
}

}  // namespace
}  // namespace pmemfs::fs

namespace pmemfs::fs {
namespace {

// A lease needs what mapping needs: opening the region. Its mode bits and search
// permission on every directory of its path, for the caller's credentials (issue 14.2).
TEST(LeaseAccess, NeedsTheRegionAndEveryDirectoryOnItsPath) {
  const char* base = std::getenv("PMEMFS_TEST_DIR");
  std::string tmpl = std::string(base ? base : "/dev/shm") + "/pmemfs-lease.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{tmpl};
  const std::string dir = tmpl, path = dir + "/region";
  {
    int fd = ::open(path.c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 16 << 20), 0);
    ::close(fd);
    auto region = pmem::Pmem2Region::Open(path, {});
    ASSERT_TRUE(region.ok());
    ASSERT_TRUE(extent::Format(**region, {}).ok());
    auto fs = FileSystem::Mount(std::move(region).value(), {});
    ASSERT_TRUE(fs.ok());
    Ctx root{0, 0, 1};
    auto f = (*fs)->Mknod(root, format::kRootIno, "f", S_IFREG | 0644, 0);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*fs)->Write(f->ino, 0, "x", 1).ok());
    ASSERT_TRUE((*fs)->SetXattr(root, f->ino, "user.pmemfs.immutable_extents", "1", 0).ok());
    Ctx user{65534, 65534, 1, [](uint32_t, int) { return false; }, [](uint32_t, uint32_t) { return false; }};
    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
    auto lease = (*fs)->Lease(user, f->ino, false, true);
    ASSERT_TRUE(lease.ok()) << lease.error().Message();
    EXPECT_FALSE(lease->writable) << "the region is 0644: read-only for others";
    ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
    EXPECT_EQ((*fs)->Lease(user, f->ino, false, true).code(), EACCES) << "a directory it cannot search";
    EXPECT_TRUE((*fs)->Lease(root, f->ino, false, true).ok()) << "privileged";
    ASSERT_EQ(::chmod(dir.c_str(), 0711), 0);
    EXPECT_TRUE((*fs)->Lease(user, f->ino, false, true).ok()) << "search permission is enough";
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    EXPECT_EQ((*fs)->Lease(user, f->ino, false, true).code(), EACCES) << "the region itself";
  }
}

}  // namespace
}  // namespace pmemfs::fs
