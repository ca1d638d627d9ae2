// SPDX-License-Identifier: BSD-3-Clause
// Node: the daemon's DRAM side of one inode in use: the lock every operation on the inode
// takes, the kernel's references to it, and the indexes built from its structures on the
// region (extent map, directory index). The region stays the truth: a Node caches nothing
// that is not rebuilt from it.
//
// Thread-safety: `mu` is the inode's lock (FileSystem documents the order). The indexes are
// changed only under `mu` held exclusively; they are built lazily under `mu` held shared
// too, so `load_mu` serialises the building. The counters belong to the FileSystem's node
// table and are guarded by its table_mu_.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>

#include "extent/extent_map.h"
#include "fs/directory.h"

namespace pmemfs::fs {

struct Node {
  explicit Node(uint64_t n) : ino(n) {}
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const uint64_t ino;
  // Shared: reading the inode, its data, its entries. Exclusive: changing any of them.
  mutable std::shared_mutex mu;

  std::mutex load_mu;                         // building the indexes under a shared `mu`
  std::optional<extent::ExtentMap> extents;   // GUARDED_BY(mu), loaded on first use
  std::unique_ptr<DirIndex> dir;              // GUARDED_BY(mu), directories, loaded on first use
  // Whether the inode carries security.capability (a write must then drop it): -1 unknown,
  // learnt on the first write and forgotten when the xattrs change. GUARDED_BY(mu)
  int8_t has_capability_xattr = -1;

  // GUARDED_BY(FileSystem::table_mu_)
  uint64_t nlookup = 0;     // kernel references (FUSE lookup count)
  uint32_t open_count = 0;  // open handles
  uint32_t leases = 0;      // direct-mapping leases (immutable-extents files only)
};

}  // namespace pmemfs::fs
