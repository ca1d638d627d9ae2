// SPDX-License-Identifier: BSD-3-Clause
// The checker's model of a region (check.h has the contract). One pass reads the region
// through a CheckImage, decides every repair into the image's overlay, and leaves the
// facts below; fsck -y commits the overlay and runs another pass.
//
//   check.cc        driver, superblock, journal, state block, inodes, extent maps, aliases
//   check_tree.cc   directories, reachability, "..", link counts, orphans, lost+found
//   check_space.cc  block and inode bitmaps, committing the repairs
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "extent/format.h"
#include "fs/check.h"
#include "fs/check_image.h"

namespace pmemfs::fs::check {

// What owns a run of blocks, in the order that decides who keeps a block owned twice.
enum class Kind : uint8_t { kChain = 0, kXattr = 1, kDirData = 2, kFileData = 3 };

struct Claim {
  uint64_t pblk = 0;
  uint64_t len = 0;
  uint64_t ino = 0;
  uint64_t slot = 0;   // data: region offset of its Extent slot; chain, xattr: of the pointer to it
  uint64_t lblk = 0;   // data: first file block
  uint32_t chain = 0;  // data: the chain block holding the slot (0 inline); chain: its position (1..)
  uint32_t flags = 0;  // data: extent flags
  Kind kind = Kind::kFileData;
  bool dropped = false;
};

// One in-use inode.
struct Facts {
  uint32_t mode = 0;
  bool doomed = false;      // cleared by this check; its names go, its blocks are freed
  bool reached = false;     // named from the root, or in a lost subtree
  bool lost_root = false;   // linked into /lost+found by the repair
  uint32_t chain_cut = UINT32_MAX;  // extent chain blocks from this position on are dropped
  uint32_t refs = 0;        // names kept in directories
  uint32_t subdirs = 0;     // directories: names of directories kept in it
  uint32_t names = 0;       // names in any directory (reachable or not)
  uint64_t named_by = 0;    // directories: the directory holding the name kept
  uint64_t owned = 0;       // blocks of its claims kept
  uint64_t claims_begin = 0, claims_end = 0;  // its range of claims_
};

struct DirEntry {
  uint64_t dir;
  uint64_t ino;
  uint64_t slot;  // region offset of the Dirent
  bool is_dir;
  bool removed;
};

class Checker {
 public:
  Checker(pmem::Region& region, const CheckOptions& opts);
  CheckResult Run();

 private:
  // ---- reporting
  void Problem(const std::string& what);
  void CannotRepair(const std::string& what);
  void Info(const std::string& what);
  void Progress(const char* phase, uint64_t done, uint64_t total);

  // ---- one pass (check.cc)
  uint64_t Pass(int pass);
  bool Superblock(int pass);
  bool Journal(int pass);
  void StateBlock();
  void ScanInodes();
  bool CheckInode(uint64_t ino, bool marked);  // adds Facts when the inode is (made) usable
  void RecreateRoot();
  void ScanMaps(uint64_t ino);
  void ResolveClaims(uint64_t begin, uint64_t end);
  void FinishInode(uint64_t ino);
  void DropClaim(Claim& c, uint64_t other);
  void ZeroSlot(uint64_t ino, uint64_t slot);
  void EditInode(uint64_t ino, const std::function<void(format::Inode&)>& edit);
  void Doom(uint64_t ino);
  Facts* Find(uint64_t ino);

  // ---- tree (check_tree.cc)
  void ScanDirectories();
  void ScanDirectory(uint64_t dir, std::vector<uint64_t>* discovered_dirs);
  void Graph();
  void Walk(uint64_t root);
  void RemoveEntry(DirEntry& e, const std::string& why);
  std::string EntryName(const DirEntry& e) const;
  void Orphans();

  // ---- space and repair (check_space.cc)
  void BlockBitmap();
  void InodeBitmap();
  bool Apply();

  pmem::Region& region_;
  const CheckOptions& opts_;
  CheckResult res_;
  format::Superblock sb_{};
  CheckImage img_;
  int pass_ = 0;
  uint64_t found_ = 0;          // problems found in this pass
  uint64_t unrepairable_ = 0;   // of those, announced as "cannot repair"
  int last_pct_ = -1;
  const char* last_phase_ = "";

  // The model of this pass.
  uint64_t orphan_head_ = 0;
  std::map<uint64_t, Facts> inodes_;                        // in-use inodes, by number
  std::vector<Claim> claims_;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> kept_;  // kept runs: start -> (end, owner)
  std::unordered_map<uint64_t, std::vector<uint64_t>> dir_blocks_;  // directory -> block offsets
  std::vector<DirEntry> entries_;
  std::vector<uint64_t> lost_roots_;
};

}  // namespace pmemfs::fs::check
