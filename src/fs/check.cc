#include "fs/check.h"

#include <sys/stat.h>

#include <cstring>
#include <deque>
#include <unordered_map>
#include <vector>

#include "extent/extent_map.h"
#include "extent/journal.h"
#include "extent/records.h"
#include "extent/superblock.h"
#include "extent/xattr_run.h"
#include "fs/directory.h"
#include "fs/filesystem.h"
#include "pmem/dram_region.h"

namespace pmemfs::fs {

using extent::ExtentMap;
using extent::Tx;
using format::Extent;
using format::Inode;
using format::kBlockSize;

namespace {

struct InodeFacts {
  bool valid = false;    // in use, checksum and type fine
  bool map_ok = false;   // extent map loads
  uint32_t refs = 0;     // directory entries naming it
  uint32_t subdirs = 0;  // directories: child directories
  uint64_t named_by = 0; // directories: the directory that names it
  bool reachable = false;
  uint64_t blocks = 0;   // blocks it really owns
};

class Checker {
 public:
  Checker(pmem::Region& region, const CheckOptions& opts) : region_(region), opts_(opts) {}

  CheckResult Run();

 private:
  void Problem(const std::string& what) {
    ++res_.problems;
    if (opts_.report) opts_.report(what);
  }
  void Fixed(const std::string& what) {
    ++res_.fixed;
    if (opts_.report) opts_.report("  fixed: " + what);
  }
  void Progress(const char* phase, uint64_t done, uint64_t total) {
    if (!opts_.progress || total < 100000) return;
    int pct = static_cast<int>(done * 100 / total);
    if (pct != last_pct_) opts_.progress(phase, last_pct_ = pct);
  }
  bool Superblock();
  bool Journal();
  void Inodes();
  void Blocks();
  void Bitmaps();
  void Tree();
  void Counts();
  void Orphans();
  void ClaimBlocks(uint64_t ino, uint64_t pblk, uint64_t len);
  bool Commit(Tx& tx, const std::string& what);

  pmem::Region& region_;
  const CheckOptions& opts_;
  CheckResult res_;
  format::Superblock sb_{};
  std::vector<InodeFacts> facts_;
  std::vector<uint64_t> owner_;             // per block: 0 free, ~0 metadata, else inode
  std::vector<uint64_t> unreachable_;
  int last_pct_ = -1;
};

bool Checker::Commit(Tx& tx, const std::string& what) {
  extent::Journal j(region_, sb_);
  (void)j.Recover();
  Status s = j.Commit(tx);
  if (!s.ok()) {
    if (opts_.report) opts_.report("  repair failed: " + what + ": " + s.error().Message());
    return false;
  }
  Fixed(what);
  return true;
}

bool Checker::Superblock() {
  auto loaded = extent::ReadSuperblock(region_);
  if (!loaded.ok()) {
    if (opts_.report) opts_.report("no valid pmemfs superblock (primary or backup): " + loaded.error().Message());
    res_.operational_error = true;
    return false;
  }
  sb_ = loaded->sb;
  if (loaded->from_backup) {
    Problem("primary superblock damaged; the backup is valid");
    if (opts_.repair) {
      region_.CopyFlush(0, &sb_, sizeof(sb_));
      region_.Drain();
      Fixed("primary superblock rewritten from the backup");
    }
  }
  return true;
}

bool Checker::Journal() {
  extent::Journal j(region_, sb_);
  auto r = j.Recover();
  if (!r.ok()) {
    Problem("journal: " + r.error().Message());
    return false;
  }
  if (region_.At<format::StateBlock>(sb_.state_off)->magic != format::kStateMagic) {
    Problem("state block damaged");
    return false;
  }
  return true;
}

void Checker::Inodes() {
  facts_.assign(sb_.inode_count, {});
  extent::InodeBitmap ibm(region_, sb_);
  if (!ibm.InUse(0)) Problem("inode bitmap: reserved inode 0 marked free");
  for (uint64_t ino = 1; ino < sb_.inode_count; ++ino) {
    Progress("inodes", ino, sb_.inode_count);
    if (!ibm.InUse(ino)) continue;
    const auto* in = region_.At<Inode>(extent::InodeOff(sb_, ino));
    if (!extent::InodeCrcOk(*in)) {
      Problem("inode " + std::to_string(ino) + ": checksum mismatch");
      continue;
    }
    uint32_t t = in->mode & S_IFMT;
    if (t != S_IFREG && t != S_IFDIR && t != S_IFLNK && t != S_IFIFO && t != S_IFSOCK && t != S_IFCHR && t != S_IFBLK) {
      Problem("inode " + std::to_string(ino) + ": invalid type");
      continue;
    }
    if (in->flags & ~format::kInodeKnownFlags) {
      Problem("inode " + std::to_string(ino) + ": unknown flags");
      continue;
    }
    facts_[ino].valid = true;
  }
  if (!facts_[format::kRootIno].valid || !S_ISDIR(region_.At<Inode>(extent::InodeOff(sb_, format::kRootIno))->mode))
    Problem("root directory damaged");
}

void Checker::ClaimBlocks(uint64_t ino, uint64_t pblk, uint64_t len) {
  for (uint64_t b = pblk; b < pblk + len; ++b) {
    if (owner_[b] != 0) {
      Problem("block " + std::to_string(b) + " claimed by inode " + std::to_string(ino) + " and " +
              (owner_[b] == ~0ull ? std::string("fixed metadata") : "inode " + std::to_string(owner_[b])));
      continue;
    }
    owner_[b] = ino;
  }
  facts_[ino].blocks += len;
}

void Checker::Blocks() {
  owner_.assign(sb_.total_blocks, 0);
  for (uint64_t b = 0; b < sb_.data_off / kBlockSize; ++b) owner_[b] = ~0ull;
  owner_[sb_.backup_off / kBlockSize] = ~0ull;
  for (uint64_t ino = 1; ino < sb_.inode_count; ++ino) {
    Progress("extents", ino, sb_.inode_count);
    if (!facts_[ino].valid) continue;
    const auto* in = region_.At<Inode>(extent::InodeOff(sb_, ino));
    auto map = ExtentMap::Load(region_, sb_, ino, *in);
    if (!map.ok()) {
      Problem("inode " + std::to_string(ino) + ": extent map: " + map.error().Message());
      continue;
    }
    facts_[ino].map_ok = true;
    for (const auto& [lblk, e] : map->entries()) ClaimBlocks(ino, e.e.pblk, e.e.len);
    for (uint64_t blk = in->extent_block; blk; blk = region_.At<format::ExtentBlock>(blk)->next)
      ClaimBlocks(ino, blk / kBlockSize, 1);
    if (in->xattr_block) {
      auto run = extent::ReadXattrRun(region_, sb_, ino, in->xattr_block);
      if (!run.ok()) {
        Problem("inode " + std::to_string(ino) + ": " + run.error().Message());
      } else {
        ClaimBlocks(ino, in->xattr_block / kBlockSize, run->nblocks);
      }
    }
    if (in->blocks != facts_[ino].blocks) {
      Problem("inode " + std::to_string(ino) + ": block count " + std::to_string(in->blocks) + ", owns " +
              std::to_string(facts_[ino].blocks));
      if (opts_.repair) {
        Tx tx(region_);
        Inode fixed = *in;
        fixed.blocks = facts_[ino].blocks;
        extent::SealInode(fixed);
        tx.Put(extent::InodeOff(sb_, ino), fixed);
        Commit(tx, "block count of inode " + std::to_string(ino));
      }
    }
  }
}

void Checker::Bitmaps() {
  const uint8_t* bm = region_.base() + sb_.block_bitmap_off;
  uint64_t leaked = 0, unmarked = 0;
  std::vector<extent::Run> to_free, to_mark;
  for (uint64_t b = 0; b < sb_.total_blocks; ++b) {
    bool marked = (bm[b / 8] >> (b % 8)) & 1;
    bool used = owner_[b] != 0;
    if (marked == used) continue;
    auto& runs = marked ? to_free : to_mark;
    (marked ? leaked : unmarked)++;
    if (!runs.empty() && runs.back().end() == b) runs.back().len++;
    else runs.push_back({b, 1});
  }
  if (unmarked) Problem(std::to_string(unmarked) + " blocks in use but marked free in the block bitmap");
  if (leaked) Problem(std::to_string(leaked) + " blocks marked in use but owned by nothing (leaked)");
  if (opts_.repair && (leaked || unmarked)) {
    extent::BlockAllocator alloc(region_, sb_);
    Tx tx(region_);
    for (const auto& r : to_mark) {
      alloc.StageUse(tx, r);
    }
    for (const auto& r : to_free) alloc.StageFree(tx, r);
    if (Commit(tx, "block bitmap")) {
      if (leaked && unmarked) ++res_.fixed;  // one transaction fixed both problems
    }
  }
  // Inode bitmap: every in-use slot must hold an inode.
  extent::InodeBitmap ibm(region_, sb_);
  for (uint64_t ino = 1; ino < sb_.inode_count; ++ino) {
    if (ibm.InUse(ino) && region_.At<Inode>(extent::InodeOff(sb_, ino))->mode == 0)
      Problem("inode " + std::to_string(ino) + ": marked in use but empty");
  }
}

void Checker::Tree() {
  std::deque<uint64_t> queue{format::kRootIno};
  facts_[format::kRootIno].reachable = true;
  facts_[format::kRootIno].named_by = format::kRootIno;
  uint64_t seen = 0;
  while (!queue.empty()) {
    uint64_t dir = queue.front();
    queue.pop_front();
    Progress("directories", ++seen, sb_.inode_count);
    const auto* din = region_.At<Inode>(extent::InodeOff(sb_, dir));
    if (!facts_[dir].map_ok) continue;
    auto map = ExtentMap::Load(region_, sb_, dir, *din);
    std::vector<uint64_t> blocks;
    bool hole = false;
    uint64_t next = 0;
    for (const auto& [lblk, e] : map->entries()) {
      if (lblk != next) hole = true;
      for (uint32_t i = 0; i < e.e.len; ++i) blocks.push_back(format::BlockOff(e.e.pblk + i));
      next = lblk + e.e.len;
    }
    if (hole) {
      Problem("directory " + std::to_string(dir) + ": has a hole");
      continue;
    }
    auto idx = DirIndex::Load(region_, std::move(blocks));
    if (!idx.ok()) {
      Problem("directory " + std::to_string(dir) + ": " + idx.error().Message());
      continue;
    }
    if (din->parent >= sb_.inode_count) Problem("directory " + std::to_string(dir) + ": bad '..'");
    DirEntryView v;
    for (uint64_t slot = 0; idx->NextFrom(slot, &v); slot = v.slotno + 1) {
      std::string where = "directory " + std::to_string(dir) + " entry '" + std::string(v.name) + "'";
      if (v.ino == 0 || v.ino >= sb_.inode_count || !facts_[v.ino].valid) {
        Problem(where + ": names inode " + std::to_string(v.ino) + ", which is not a valid inode");
        continue;
      }
      const auto* cin = region_.At<Inode>(extent::InodeOff(sb_, v.ino));
      if (v.type != ModeType(cin->mode)) Problem(where + ": type differs from the inode's");
      if (v.hash != NameHash(v.name)) Problem(where + ": name hash mismatch");
      InodeFacts& f = facts_[v.ino];
      f.refs++;
      if (S_ISDIR(cin->mode)) {
        facts_[dir].subdirs++;
        if (f.reachable) {
          Problem(where + ": a second name for directory " + std::to_string(v.ino));
          continue;
        }
        f.named_by = dir;
        if (cin->parent != dir) Problem("directory " + std::to_string(v.ino) + ": '..' is not its parent");
        queue.push_back(v.ino);
      }
      f.reachable = true;
    }
  }
}

void Checker::Counts() {
  for (uint64_t ino = 1; ino < sb_.inode_count; ++ino) {
    InodeFacts& f = facts_[ino];
    if (!f.valid) continue;
    const auto* in = region_.At<Inode>(extent::InodeOff(sb_, ino));
    if (!f.reachable) {
      if (in->nlink == 0 && (in->flags & format::kInodeOrphan)) continue;  // open-unlinked: freed at mount
      Problem("inode " + std::to_string(ino) + ": in use but in no directory");
      unreachable_.push_back(ino);
      continue;
    }
    uint32_t want = S_ISDIR(in->mode) ? 2 + f.subdirs : f.refs;
    if (in->nlink != want) {
      Problem("inode " + std::to_string(ino) + ": link count " + std::to_string(in->nlink) + ", should be " +
              std::to_string(want));
      if (opts_.repair) {
        Tx tx(region_);
        Inode fixed = *in;
        fixed.nlink = want;
        extent::SealInode(fixed);
        tx.Put(extent::InodeOff(sb_, ino), fixed);
        Commit(tx, "link count of inode " + std::to_string(ino));
      }
    }
  }
}

void Checker::Orphans() {
  uint64_t ino = region_.At<format::StateBlock>(sb_.state_off)->orphan_head, prev = 0, n = 0;
  while (ino) {
    if (ino >= sb_.inode_count || !facts_[ino].valid || ++n > sb_.inode_count) {
      Problem("orphan list: bad link to inode " + std::to_string(ino));
      return;
    }
    const auto* in = region_.At<Inode>(extent::InodeOff(sb_, ino));
    if (in->nlink != 0 || !(in->flags & format::kInodeOrphan) || in->prev_orphan != prev) {
      Problem("orphan list: inode " + std::to_string(ino) + " is not a consistent orphan");
      return;
    }
    prev = ino;
    ino = in->next_orphan;
  }
  for (uint64_t i = 1; i < sb_.inode_count; ++i) {
    if (!facts_[i].valid) continue;
    const auto* in = region_.At<Inode>(extent::InodeOff(sb_, i));
    if (in->nlink == 0 && !(in->flags & format::kInodeOrphan))
      Problem("inode " + std::to_string(i) + ": no links and not on the orphan list");
  }
}

CheckResult Checker::Run() {
  if (!Superblock()) return res_;
  if (!Journal()) {
    res_.operational_error = res_.problems == 0;
    return res_;
  }
  Inodes();
  Blocks();
  Bitmaps();
  Tree();
  Counts();
  Orphans();
  if (opts_.repair && !unreachable_.empty() && !res_.operational_error) {
    auto fs = FileSystem::Mount(region_, {});
    if (fs.ok()) {
      for (uint64_t ino : unreachable_) {
        Status s = (*fs)->Reattach(ino);
        if (s.ok()) Fixed("inode " + std::to_string(ino) + " linked into /lost+found");
        else if (opts_.report) opts_.report("  repair failed: inode " + std::to_string(ino) + ": " + s.error().Message());
      }
    }
  }
  return res_;
}

}  // namespace

CheckResult Check(pmem::Region& region, const CheckOptions& opts) {
  Checker c(region, opts);
  return c.Run();
}

}  // namespace pmemfs::fs
