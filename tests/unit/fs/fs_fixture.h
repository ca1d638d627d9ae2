// SPDX-License-Identifier: BSD-3-Clause
// A FileSystem mounted on a formatted DramRegion, for fs-layer tests without FUSE.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "extent/superblock.h"
#include "fs/filesystem.h"
#include "pmem/dram_region.h"

namespace pmemfs::fs {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override { Format(64ull << 20); }

  void Format(uint64_t size, extent::MkfsOptions opts = {}) {
    fs_.reset();
    region_ = std::make_unique<pmem::DramRegion>(size);
    ASSERT_TRUE(extent::Format(*region_, opts).ok());
    Remount();
  }
  // Drops the FileSystem (clean unmount) and mounts the same region again.
  void Remount(MountOptions opts = {}) {
    fs_.reset();
    auto fs = FileSystem::Mount(*region_, opts);
    ASSERT_TRUE(fs.ok()) << fs.error().Message();
    fs_ = std::move(fs).value();
  }

  uint64_t Create(uint64_t parent, const std::string& name, uint32_t mode = S_IFREG | 0644) {
    auto e = fs_->Mknod(ctx_, parent, name, mode, 0);
    EXPECT_TRUE(e.ok()) << name << ": " << (e.ok() ? "" : e.error().Message());
    return e.ok() ? e->ino : 0;
  }
  uint64_t Mkdir(uint64_t parent, const std::string& name) {
    auto e = fs_->Mkdir(ctx_, parent, name, 0755);
    EXPECT_TRUE(e.ok()) << name;
    return e.ok() ? e->ino : 0;
  }
  void Write(uint64_t ino, uint64_t off, const std::string& data) {
    auto r = fs_->Write(ino, off, data.data(), data.size());
    ASSERT_TRUE(r.ok()) << r.error().Message();
    ASSERT_EQ(*r, data.size());
  }
  std::string Read(uint64_t ino, uint64_t off, uint64_t len) {
    std::string out;
    Status s = fs_->Read(ino, off, len, [&](const std::vector<FileSystem::Piece>& pieces) {
      for (const auto& p : pieces) {
        if (p.data) out.append(static_cast<const char*>(p.data), p.len);
        else out.append(p.len, '\0');
      }
    });
    EXPECT_TRUE(s.ok());
    return out;
  }
  struct stat Stat(uint64_t ino) {
    auto st = fs_->GetAttr(ino);
    EXPECT_TRUE(st.ok());
    return st.ok() ? *st : (struct stat){};
  }

  Ctx ctx_{0, 0, 1};  // no capability checker: privileged
  std::unique_ptr<pmem::DramRegion> region_;
  std::unique_ptr<FileSystem> fs_;
};

}  // namespace pmemfs::fs
