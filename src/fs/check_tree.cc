// SPDX-License-Identifier: BSD-3-Clause
// The checker's tree phases: directory entries (salvaged entry by entry), reachability
// from the root, second names of directories, lost subtrees, "..", link counts, and the
// orphan list.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <unordered_set>

#include "extent/records.h"
#include "fs/check_internal.h"
#include "fs/directory.h"
#include "fs/filesystem.h"

namespace pmemfs::fs::check {

using format::Dirent;
using format::Inode;
using format::kDirSlotSize;
using format::kDirSlotsPerBlock;

namespace {

std::string N(uint64_t v) { return std::to_string(v); }

// A name as it can be printed on one line.
std::string Printable(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

void Checker::ScanDirectories() {
  std::vector<uint64_t> work;
  for (const auto& [ino, f] : inodes_)
    if (!f.doomed && S_ISDIR(f.mode)) work.push_back(ino);
  for (size_t i = 0; i < work.size(); ++i) {
    Progress("directories", i, work.size());
    ScanDirectory(work[i], &work);
  }
}

// Parses every slot as the daemon's DirIndex::Load does, but keeps what is valid: a slot
// that does not start a well-formed entry is emptied (the whole slot, so that no stale name
// bytes can later be read as an entry), and an entry that names no usable inode, repeats a
// name or names the root is removed (all of its slots).
void Checker::ScanDirectory(uint64_t dir, std::vector<uint64_t>* work) {
  const std::vector<uint64_t> blocks = dir_blocks_[dir];
  std::unordered_set<std::string> names;
  static const uint8_t kZero[format::kBlockSize] = {};
  std::vector<uint8_t> blk(format::kBlockSize);
  for (uint64_t b = 0; b < blocks.size(); ++b) {
    img_.Read(blocks[b], blk.data(), blk.size());
    for (uint32_t s = 0; s < kDirSlotsPerBlock;) {
      Dirent de;
      std::memcpy(&de, blk.data() + s * kDirSlotSize, sizeof(de));
      const uint64_t slot = blocks[b] + s * kDirSlotSize;
      if (de.ino == 0) {
        ++s;
        continue;
      }
      std::string name;
      bool shape = de.name_len != 0 && de.nslots == format::DirentSlots(de.name_len) && s + de.nslots <= kDirSlotsPerBlock;
      if (shape) {
        name.assign(reinterpret_cast<const char*>(blk.data() + s * kDirSlotSize + sizeof(Dirent)), de.name_len);
        shape = name.find('/') == std::string::npos && name.find('\0') == std::string::npos && name != "." && name != "..";
      }
      if (!shape) {
        Problem("directory " + N(dir) + " block " + N(b) + " slot " + N(s) + ": malformed entry (removed)");
        img_.Write(slot, kZero, kDirSlotSize);
        ++s;
        continue;
      }
      const std::string where = "directory " + N(dir) + " entry '" + Printable(name) + "'";
      const uint64_t span = uint64_t{de.nslots} * kDirSlotSize;
      auto remove = [&](const std::string& why) {
        Problem(where + ": " + why + " (removed)");
        img_.Write(slot, kZero, span);
      };
      s += de.nslots;
      if (!names.insert(name).second) {
        remove("duplicate name");
        continue;
      }
      const uint64_t child = de.ino;
      if (child >= sb_.inode_count) {
        remove("names inode " + N(child) + ", beyond the inode table");
        continue;
      }
      Facts* cf = Find(child);
      if (!cf && CheckInode(child, false)) {
        // In use and intact, but marked free in the inode bitmap: taken back (the bitmap
        // phase marks it), its blocks checked like everyone else's, but ranked last.
        Problem("inode " + N(child) + ": named by " + where + " but marked free in the inode bitmap (marked)");
        cf = Find(child);
        ScanMaps(child);
        ResolveClaims(cf->claims_begin, cf->claims_end);
        FinishInode(child);
        if (!cf->doomed && S_ISDIR(cf->mode)) work->push_back(child);
      }
      if (!cf || cf->doomed) {
        remove("names inode " + N(child) + ", which is " + (cf ? "cleared" : "not in use"));
        continue;
      }
      if (child == format::kRootIno) {
        remove("a name for the root directory");
        continue;
      }
      Dirent fixed = de;
      if (de.type != ModeType(cf->mode)) {
        Problem(where + ": type differs from the inode's (rewritten)");
        fixed.type = ModeType(cf->mode);
      }
      if (de.hash != NameHash(name)) {
        Problem(where + ": name hash mismatch (rewritten)");
        fixed.hash = NameHash(name);
      }
      if (std::memcmp(&fixed, &de, sizeof(de)) != 0) img_.Put(slot, fixed);
      entries_.push_back({dir, child, slot, S_ISDIR(cf->mode) != 0, false});
      cf->names++;
    }
  }
}

std::string Checker::EntryName(const DirEntry& e) const {
  Dirent de = img_.Get<Dirent>(e.slot);
  std::string name(de.name_len, '\0');
  img_.Read(e.slot + sizeof(Dirent), name.data(), name.size());
  return Printable(name);
}

void Checker::RemoveEntry(DirEntry& e, const std::string& why) {
  Problem("directory " + N(e.dir) + " entry '" + EntryName(e) + "': " + why + " (removed)");
  static const uint8_t kZero[kDirSlotSize * 5] = {};
  img_.Write(e.slot, kZero, uint64_t{img_.Get<Dirent>(e.slot).nslots} * kDirSlotSize);
  e.removed = true;
}

// Breadth first from `root`: a directory keeps the first name met; any further name for
// it is removed (a directory has exactly one parent).
void Checker::Walk(uint64_t root) {
  auto by_dir = [](const DirEntry& e, uint64_t d) { return e.dir < d; };
  std::deque<uint64_t> queue{root};
  inodes_[root].reached = true;
  while (!queue.empty()) {
    uint64_t d = queue.front();
    queue.pop_front();
    for (auto it = std::lower_bound(entries_.begin(), entries_.end(), d, by_dir); it != entries_.end() && it->dir == d; ++it) {
      if (it->removed) continue;
      Facts& c = inodes_[it->ino];
      if (it->is_dir) {
        if (c.reached) {
          RemoveEntry(*it, "a second name for directory " + N(it->ino));
          continue;
        }
        c.named_by = d;
        inodes_[d].subdirs++;
        queue.push_back(it->ino);
      } else {
        c.refs++;
      }
      c.reached = true;
    }
  }
}

void Checker::Graph() {
  std::stable_sort(entries_.begin(), entries_.end(), [](const DirEntry& a, const DirEntry& b) { return a.dir < b.dir; });
  inodes_[format::kRootIno].named_by = format::kRootIno;
  Walk(format::kRootIno);
  // What the root does not reach: the roots of lost subtrees go to /lost+found. First the
  // directories no entry names, then one of each cycle of directories naming each other.
  auto lost = [&](uint64_t ino, Facts& f) {
    Problem("inode " + N(ino) + ": in use but in no directory (linked into /lost+found as #" + N(ino) + ")");
    f.lost_root = true;
    lost_roots_.push_back(ino);
    Walk(ino);
  };
  // Unnamed inodes with no links marked as orphans are the orphan list's (Orphans()).
  auto orphan = [&](uint64_t ino) {
    Inode in = img_.Get<Inode>(extent::InodeOff(sb_, ino));
    return in.nlink == 0 && (in.flags & format::kInodeOrphan);
  };
  for (auto& [ino, f] : inodes_)
    if (!f.doomed && !f.reached && S_ISDIR(f.mode) && f.names == 0 && !orphan(ino)) lost(ino, f);
  for (auto& [ino, f] : inodes_)
    if (!f.doomed && !f.reached && S_ISDIR(f.mode) && !orphan(ino)) lost(ino, f);
  for (auto& [ino, f] : inodes_)
    if (!f.doomed && !f.reached && !orphan(ino)) lost(ino, f);
  // "..", and link counts from the names kept.
  for (auto& [ino, f] : inodes_) {
    if (f.doomed || !f.reached) continue;
    Inode in = img_.Get<Inode>(extent::InodeOff(sb_, ino));
    uint32_t want;
    if (S_ISDIR(f.mode)) {
      if (!f.lost_root && in.parent != f.named_by) {
        Problem("directory " + N(ino) + ": '..' is " + N(in.parent) + ", should be " + N(f.named_by) + " (fixed)");
        EditInode(ino, [p = f.named_by](Inode& i) { i.parent = p; });
      }
      // The daemon grows a directory a block at a time and never shrinks it; only an
      // unlinked one (an orphan) may have lost its blocks.
      if (uint64_t size = dir_blocks_[ino].size() * format::kBlockSize; in.size != size) {
        Problem("directory " + N(ino) + ": size " + N(in.size) + ", should be " + N(size) + " (fixed)");
        EditInode(ino, [size](Inode& i) { i.size = size; });
      }
      want = 2 + f.subdirs;
    } else {
      if (f.lost_root) continue;  // linking into /lost+found sets it to 1
      want = f.refs;
    }
    if (in.nlink != want) {
      Problem("inode " + N(ino) + ": link count " + N(in.nlink) + ", should be " + N(want) + " (fixed)");
      EditInode(ino, [want](Inode& i) { i.nlink = want; });
    }
  }
}

// The orphan list (state block, doubly linked through the inodes) must hold exactly the
// unnamed inodes with no links that are marked as orphans: a mount frees each. When it
// does not, it is rebuilt empty: its unnamed members are freed now, named ones unmarked.
void Checker::Orphans() {
  std::string why;
  std::unordered_set<uint64_t> listed;
  for (uint64_t cur = orphan_head_, prev = 0; cur && why.empty();) {
    Facts* f = cur < sb_.inode_count ? Find(cur) : nullptr;
    Inode in{};
    if (f) in = img_.Get<Inode>(extent::InodeOff(sb_, cur));
    if (!f || f->doomed) why = "names inode " + N(cur) + ", which is not in use";
    else if (!listed.insert(cur).second) why = "loops back to inode " + N(cur);
    else if (f->reached) why = "holds inode " + N(cur) + ", which has a name";
    else if (in.nlink != 0) why = "holds inode " + N(cur) + ", whose link count is " + N(in.nlink);
    else if (!(in.flags & format::kInodeOrphan)) why = "holds inode " + N(cur) + ", which is not marked as an orphan";
    else if (in.prev_orphan != prev) why = "has a wrong back link at inode " + N(cur);
    prev = cur;
    cur = in.next_orphan;
  }
  std::vector<uint64_t> flagged;
  for (auto& [ino, f] : inodes_) {
    if (f.doomed) continue;
    Inode in = img_.Get<Inode>(extent::InodeOff(sb_, ino));
    bool marked = (in.flags & format::kInodeOrphan) || in.next_orphan || in.prev_orphan;
    if (!marked && !listed.count(ino)) continue;
    flagged.push_back(ino);
    if (why.empty() && f.reached) why = "is consistent, but inode " + N(ino) + " has a name and an orphan mark";
    if (why.empty() && !listed.count(ino)) why = "misses orphan inode " + N(ino);
  }
  if (why.empty()) return;
  Problem("orphan list " + why + " (rebuilt: unnamed orphans freed, named inodes unmarked)");
  auto st = img_.Get<format::StateBlock>(sb_.state_off);
  st.orphan_head = 0;
  img_.Put(sb_.state_off, st);
  for (uint64_t ino : flagged) {
    Facts& f = inodes_[ino];
    if (f.reached) {
      EditInode(ino, [](Inode& i) {
        i.flags &= ~format::kInodeOrphan;
        i.next_orphan = i.prev_orphan = 0;
      });
    } else {
      Info("orphan inode " + N(ino) + " freed");
      Doom(ino);
    }
  }
}

}  // namespace pmemfs::fs::check
