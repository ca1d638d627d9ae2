// SPDX-License-Identifier: BSD-3-Clause
#include "fs/directory.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "fs/check.h"
#include "unit/fs/fs_fixture.h"

namespace pmemfs::fs {
namespace {

using format::kRootIno;

TEST_F(FsTest, LookupInLargeDirectory) {
  extent::MkfsOptions opts;
  opts.inode_count = 30000;
  Format(256ull << 20, opts);
  uint64_t d = Mkdir(kRootIno, "big");
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) ASSERT_NE(Create(d, "file-" + std::to_string(i)), 0u);
  for (int i = 0; i < kN; i += 997) {
    auto e = fs_->Lookup(d, "file-" + std::to_string(i));
    ASSERT_TRUE(e.ok()) << i;
  }
  EXPECT_EQ(fs_->Lookup(d, "file-x").code(), ENOENT);
  Remount();  // the index is rebuilt from the blocks
  EXPECT_TRUE(fs_->Lookup(d, "file-19999").ok());
  size_t n = 0;
  ASSERT_TRUE(fs_->ReadDir(d, 0, false, [&](std::string_view, const Entry&, uint64_t) {
                   ++n;
                   return true;
                 }).ok());
  EXPECT_EQ(n, kN + 2u);
}

TEST_F(FsTest, ReaddirCookiesStayValidWhileTheDirectoryChanges) {
  uint64_t d = Mkdir(kRootIno, "d");
  for (int i = 0; i < 300; ++i) Create(d, "n" + std::to_string(i) + std::string(i % 7 * 20, 'x'));
  // Read the first 100 entries, then change the directory, then resume from the cookie.
  std::set<std::string> first;
  uint64_t cookie = 0;
  ASSERT_TRUE(fs_->ReadDir(d, 0, false, [&](std::string_view name, const Entry&, uint64_t next) {
                   first.emplace(name);
                   cookie = next;
                   return first.size() < 100;
                 }).ok());
  ASSERT_EQ(first.size(), 100u);
  // Remove one entry not yet returned, add new ones.
  std::string victim;
  for (int i = 0; i < 300 && victim.empty(); ++i) {
    std::string n = "n" + std::to_string(i) + std::string(i % 7 * 20, 'x');
    if (!first.count(n)) victim = n;
  }
  ASSERT_TRUE(fs_->Unlink(d, victim).ok());
  for (int i = 0; i < 50; ++i) Create(d, "new" + std::to_string(i));
  std::multiset<std::string> rest;
  ASSERT_TRUE(fs_->ReadDir(d, cookie, false, [&](std::string_view name, const Entry&, uint64_t) {
                   rest.emplace(name);
                   return true;
                 }).ok());
  // Every entry that existed throughout is returned exactly once overall; the removed one never.
  for (int i = 0; i < 300; ++i) {
    std::string n = "n" + std::to_string(i) + std::string(i % 7 * 20, 'x');
    if (n == victim) continue;
    EXPECT_EQ(first.count(n) + rest.count(n), 1u) << n;
  }
  EXPECT_EQ(rest.count(victim), 0u);
}

TEST_F(FsTest, NamesAreValidated) {
  EXPECT_EQ(fs_->Mknod(ctx_, kRootIno, std::string(256, 'a'), S_IFREG | 0644, 0).code(), ENAMETOOLONG);
  EXPECT_TRUE(fs_->Mknod(ctx_, kRootIno, std::string(255, 'a'), S_IFREG | 0644, 0).ok());
  EXPECT_EQ(fs_->Mknod(ctx_, kRootIno, "a/b", S_IFREG | 0644, 0).code(), EINVAL);
  EXPECT_EQ(fs_->Mknod(ctx_, kRootIno, std::string(255, 'a'), S_IFREG | 0644, 0).code(), EEXIST);
}

// Names of every length, removed by unlink, rename away and rmdir: the directory stays
// well-formed on media (a name spanning several 64-byte slots once left its tail behind,
// which parsed as entries after a remount: "directory entry malformed").
TEST_F(FsTest, RemovingNamesOfEveryLengthLeavesAWellFormedDirectory) {
  uint64_t d = Mkdir(kRootIno, "d");
  uint64_t other = Mkdir(kRootIno, "other");
  auto name = [](size_t len, char c) { return std::string(len, c); };
  for (size_t len = 1; len <= format::kMaxNameLen; ++len) {
    Create(d, name(len, 'f'));
    Mkdir(d, name(len, 'd'));
    Create(d, name(len, 'r'));
    Create(d, name(len, 'k'));  // stays
  }
  for (size_t len = 1; len <= format::kMaxNameLen; ++len) {
    ASSERT_TRUE(fs_->Unlink(d, name(len, 'f')).ok()) << len;
    ASSERT_TRUE(fs_->Rmdir(d, name(len, 'd')).ok()) << len;
    ASSERT_TRUE(fs_->Rename(d, name(len, 'r'), other, name(len, 'r'), 0).ok()) << len;
  }
  Remount();  // the index is rebuilt from the blocks
  size_t n = 0;
  ASSERT_TRUE(fs_->ReadDir(d, 0, false, [&](std::string_view nm, const Entry&, uint64_t) {
                   EXPECT_TRUE(nm == "." || nm == ".." || nm.find_first_not_of('k') == std::string_view::npos) << nm;
                   ++n;
                   return true;
                 }).ok());
  EXPECT_EQ(n, format::kMaxNameLen + 2);
  for (size_t len = 1; len <= format::kMaxNameLen; ++len) {
    EXPECT_TRUE(fs_->Lookup(d, name(len, 'k')).ok()) << len;
    EXPECT_EQ(fs_->Lookup(d, name(len, 'f')).code(), ENOENT) << len;
    EXPECT_TRUE(fs_->Lookup(other, name(len, 'r')).ok()) << len;
  }
  // The freed slots are reused by new names, and the directory still loads.
  for (size_t len = 1; len <= format::kMaxNameLen; len += 7) Create(d, name(len, 'n'));
  Remount();
  EXPECT_TRUE(fs_->Lookup(d, name(253, 'n')).ok());
  fs_.reset();
  CheckResult c = Check(*region_, {});
  EXPECT_EQ(c.problems, 0u);
  Remount();
}

}  // namespace
}  // namespace pmemfs::fs
