// SPDX-License-Identifier: BSD-3-Clause
// Helpers for tests that damage images on purpose: find structures on the region, run the
// checker with its report captured, and walk a mounted filesystem reading everything.
#pragma once

#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

#include "extent/extent_map.h"
#include "extent/records.h"
#include "fs/check.h"
#include "fs/filesystem.h"
#include "pmem/region.h"

namespace pmemfs::testing {

struct DirSlot {
  uint64_t off;  // region offset of the Dirent
  format::Dirent de;
  std::string name;
};

// The entries of directory `dir` as they are on the region (blocks in file order).
inline std::vector<DirSlot> EntriesOf(const pmem::Region& r, const format::Superblock& sb, uint64_t dir) {
  std::vector<DirSlot> out;
  const auto* in = r.At<format::Inode>(extent::InodeOff(sb, dir));
  auto map = extent::ExtentMap::Load(r, sb, dir, *in);
  if (!map.ok()) return out;
  for (const auto& [lblk, e] : map->entries()) {
    for (uint64_t b = 0; b < e.e.len; ++b) {
      uint64_t blk = format::BlockOff(e.e.pblk + b);
      for (uint64_t s = 0; s < format::kDirSlotsPerBlock;) {
        format::Dirent de;
        std::memcpy(&de, r.base() + blk + s * format::kDirSlotSize, sizeof(de));
        if (de.ino == 0 || de.nslots == 0) {
          ++s;
          continue;
        }
        out.push_back({blk + s * format::kDirSlotSize, de,
                       std::string(r.At<const char>(blk + s * format::kDirSlotSize + sizeof(de)), de.name_len)});
        s += de.nslots;
      }
    }
  }
  return out;
}

// The extents of inode `ino` with the region offsets of their slots.
struct ExtentSlot {
  uint64_t slot;
  format::Extent e;
};
inline std::vector<ExtentSlot> ExtentsOf(const pmem::Region& r, const format::Superblock& sb, uint64_t ino) {
  std::vector<ExtentSlot> out;
  const auto* in = r.At<format::Inode>(extent::InodeOff(sb, ino));
  auto map = extent::ExtentMap::Load(r, sb, ino, *in);
  if (!map.ok()) return out;
  for (const auto& [lblk, e] : map->entries()) out.push_back({e.slot, e.e});
  return out;
}

struct CheckRun {
  fs::CheckResult result;
  std::string report;
  bool cannot_repair() const { return report.find("cannot repair") != std::string::npos; }
};
inline CheckRun RunCheck(pmem::Region& r, bool repair) {
  CheckRun run;
  fs::CheckOptions o;
  o.repair = repair;
  o.report = [&](const std::string& l) { run.report += l + "\n"; };
  run.result = fs::Check(r, o);
  return run;
}

// Reads everything reachable: every listing, every name's attributes, every file's bytes,
// every symlink and xattr. Returns one line per operation that failed (empty: all read).
// With `write`, also appends to each file and creates a file in each directory.
inline std::string ReadEverything(fs::FileSystem& fs, bool write, uint64_t dir = format::kRootIno,
                                  const std::string& path = "", int depth = 0) {
  const fs::Ctx root{0, 0, 1};
  std::string failures;
  auto fail = [&](const std::string& what, const Error& e) { failures += path + "/" + what + ": " + e.Message() + "\n"; };
  if (depth > 64) return path + ": too deep\n";
  std::vector<std::string> names;
  Status s = fs.ReadDir(dir, 0, true, [&](std::string_view name, const fs::Entry&, uint64_t) {
    if (name != "." && name != "..") names.emplace_back(name);
    return true;
  });
  if (!s.ok()) fail("readdir", s.error());
  for (const auto& name : names) {
    auto e = fs.Lookup(dir, name);
    if (!e.ok()) {
      fail(name + " lookup", e.error());
      continue;
    }
    if (auto l = fs.ListXattr(e->ino); !l.ok()) {
      fail(name + " listxattr", l.error());
    } else {
      for (const auto& x : *l)
        if (auto v = fs.GetXattr(e->ino, x); !v.ok()) fail(name + " getxattr " + x, v.error());
    }
    if (auto x = fs.GetXattr(e->ino, "user.pmemfs.extents"); !x.ok() && S_ISREG(e->attr.st_mode))
      fail(name + " extents", x.error());
    if (S_ISDIR(e->attr.st_mode)) {
      failures += ReadEverything(fs, write, e->ino, path + "/" + name, depth + 1);
    } else if (S_ISLNK(e->attr.st_mode)) {
      if (auto t = fs.Readlink(e->ino); !t.ok()) fail(name + " readlink", t.error());
    } else if (S_ISREG(e->attr.st_mode)) {
      uint64_t got = 0;
      Status rd = fs.Read(e->ino, 0, e->attr.st_size, [&](const std::vector<fs::FileSystem::Piece>& pieces) {
        for (const auto& p : pieces) got += p.len;
      });
      if (!rd.ok()) fail(name + " read", rd.error());
      else if (got != static_cast<uint64_t>(e->attr.st_size)) failures += path + "/" + name + ": short read\n";
      if (write) {
        if (auto w = fs.Write(e->ino, e->attr.st_size, "+", 1); !w.ok()) fail(name + " append", w.error());
      }
    }
  }
  if (write) {
    if (auto c = fs.Mknod(root, dir, "created-after-repair", S_IFREG | 0644, 0); !c.ok()) fail("create", c.error());
  }
  return failures;
}

}  // namespace pmemfs::testing
