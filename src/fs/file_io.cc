// SPDX-License-Identifier: BSD-3-Clause
// File data: read, write, truncate, fallocate, lseek, copy_file_range.
//
// Data blocks are written in place with non-temporal stores and flushed; the commit that
// follows (size, mtime, new extents) drains them in its first fence, so data is durable
// before any metadata that exposes it, and both before the reply.
#include <fcntl.h>
#include <linux/falloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "extent/records.h"
#include "fs/filesystem.h"

namespace pmemfs::fs {

using extent::ExtentMap;
using extent::Run;
using extent::Tx;
using format::Extent;
using format::Inode;
using format::kBlockSize;

namespace {

constexpr uint64_t kNoEnd = uint64_t{1} << 52;  // beyond any logical block

uint64_t BlocksUp(uint64_t bytes) { return (bytes + kBlockSize - 1) / kBlockSize; }

format::Timespec Now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return format::Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0};
}

// Blocks of [lblk, lblk+n) not mapped by `map`.
uint64_t HoleBlocks(const ExtentMap& map, uint64_t lblk, uint64_t n) {
  uint64_t holes = 0, pos = lblk, end = lblk + n;
  while (pos < end) {
    const Extent* e = map.Next(pos);
    if (!e || e->lblk >= end) return holes + (end - pos);
    if (e->lblk > pos) holes += e->lblk - pos;
    pos = std::min(end, e->lblk + e->len);
  }
  return holes;
}

}  // namespace

Status FileSystem::Read(uint64_t ino, uint64_t off, uint64_t size,
                        const std::function<void(const std::vector<Piece>&)>& sink) {
  NodeRef node = GetNode(ino);
  std::shared_lock lk(node->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (S_ISDIR(in.mode)) return Err(EISDIR, "read of a directory");
  std::vector<Piece> pieces;
  if (off < in.size && size > 0) {
    uint64_t end = std::min<uint64_t>(in.size, off + std::min<uint64_t>(size, kMaxFileSize));
    PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(*node, in));
    auto add = [&](const void* p, size_t n) {
      if (!p && !pieces.empty() && !pieces.back().data) pieces.back().len += n;
      else pieces.push_back(Piece{p, n});
    };
    for (uint64_t pos = off; pos < end;) {
      const Extent* e = map->Next(pos / kBlockSize);
      uint64_t estart = e ? e->lblk * kBlockSize : end;
      if (!e || estart >= end) {
        add(nullptr, end - pos);
        break;
      }
      if (pos < estart) {
        add(nullptr, estart - pos);
        pos = estart;
      }
      uint64_t n = std::min(end, (e->lblk + e->len) * kBlockSize) - pos;
      if (e->flags & format::kExtentUnwritten) add(nullptr, n);
      else add(region_->base() + e->pblk * kBlockSize + (pos - estart), n);
      pos += n;
    }
  }
  sink(pieces);  // under the shared lock: the blocks cannot be freed until the reply is out
  return Ok();
}

Status FileSystem::AllocateLocked(Tx& tx, Inode& in, ExtentMap& map, uint64_t lblk, uint64_t nblocks,
                                  bool unwritten, uint64_t align) {
  uint64_t pos = lblk, end = lblk + nblocks;
  while (pos < end) {
    const Extent* e = map.Next(pos);
    if (e && e->lblk <= pos) {
      pos = e->lblk + e->len;
      continue;
    }
    uint64_t hole_end = e ? std::min(end, e->lblk) : end;
    // Continue the extent that ends here, when its physical successor is free.
    uint64_t goal = 0;
    if (pos > 0) {
      if (const Extent* p = map.Next(pos - 1); p && p->lblk + p->len == pos) goal = p->pblk + p->len;
    }
    while (pos < hole_end) {
      uint64_t want = std::min<uint64_t>(hole_end - pos, uint64_t{1} << 30);
      PMEMFS_ASSIGN_OR_RETURN(Run r, alloc_.Reserve(want, goal, align, false));
      alloc_.StageUse(tx, r);
      uint32_t flags = unwritten ? uint32_t{format::kExtentUnwritten} : 0u;
      PMEMFS_TRY(map.Insert(tx, in, Extent{pos, r.start, static_cast<uint32_t>(r.len), flags}, alloc_));
      in.blocks += r.len;
      pos += r.len;
      goal = r.end();
    }
  }
  return Ok();
}

Result<size_t> FileSystem::Write(uint64_t ino, uint64_t off, const void* data, size_t len, const Ctx& ctx) {
  NodeRef n = GetNode(ino);
  std::unique_lock lk(n->mu);
  return WriteLocked(ctx, *n, off, data, len);
}

Result<bool> FileSystem::OverwriteInPlaceLocked(Node& n, Inode& in, uint64_t off, const void* data, size_t len) {
  if (off + len > in.size || (in.mode & (S_ISUID | S_ISGID))) return false;
  if (n.has_capability_xattr < 0) {
    bool caps = false;
    if (in.xattr_block) {
      PMEMFS_ASSIGN_OR_RETURN(extent::XattrRun run, XattrsOf(n.ino, in));
      for (const auto& [name, value] : run.list) caps |= name == "security.capability";
    }
    n.has_capability_xattr = caps;
  }
  if (n.has_capability_xattr) return false;  // the write must drop it: a transaction
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(n, in));
  // Every block written already: nothing to allocate, convert or zero.
  const uint64_t end = off + len;
  for (uint64_t b = off / kBlockSize; b < BlocksUp(end);) {
    const Extent* e = map->Next(b);
    if (!e || e->lblk > b || (e->flags & format::kExtentUnwritten)) return false;
    b = e->lblk + e->len;
  }
  const auto* src = static_cast<const uint8_t*>(data);
  for (uint64_t pos = off; pos < end;) {
    const Extent* e = map->Next(pos / kBlockSize);
    uint64_t m = std::min(end, (e->lblk + e->len) * kBlockSize) - pos;
    region_->CopyFlush(e->pblk * kBlockSize + (pos - e->lblk * kBlockSize), src + (pos - off), m);
    pos += m;
  }
  // mtime and ctime: one word stored in place too (format.h, data_time_ns), which the
  // inode's checksum leaves out. A replay of the live log must not put an older one back:
  // when the log holds this inode's word, it is emptied first.
  const uint64_t word = extent::InodeOff(sb_, n.ino) + offsetof(Inode, data_time_ns);
  journal_.ForgetLoggedRange(word, sizeof(uint64_t));
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const uint64_t ns = static_cast<uint64_t>(now.tv_sec) * 1000000000 + static_cast<uint64_t>(now.tv_nsec);
  __atomic_store_n(region_->At<uint64_t>(word), ns, __ATOMIC_RELAXED);  // one 8-byte store: never torn
  region_->Flush(word, sizeof(ns));
  in.mtime = in.ctime = format::Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec), 0};
  region_->Drain();  // the data and the times durable before the reply
  return true;
}

Result<size_t> FileSystem::WriteLocked(const Ctx& ctx, Node& n, uint64_t off, const void* data, size_t len) {
  const uint64_t ino = n.ino;
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (S_ISDIR(in.mode)) return Err(EISDIR, "write to a directory");
  if (!S_ISREG(in.mode)) return Err(EINVAL, "write to a special file");
  if (len == 0) return size_t{0};
  // As generic_write_check_limits(): at or past the limit EFBIG, across it a short write.
  if (off >= kMaxFileSize) return Err(EFBIG, "write beyond the maximum file size");
  len = std::min<uint64_t>(len, kMaxFileSize - off);
  if (off + len > in.size) {
    PMEMFS_TRY(CheckImmutableChangeLocked(ino, in, "extending write"));
    // Bytes between the old EOF and the write become visible: they must read as zeros.
    PMEMFS_TRY(ClearPastEofLocked(n, off));
    PMEMFS_ASSIGN_OR_RETURN(in, LoadInode(ino));
  }
  PMEMFS_ASSIGN_OR_RETURN(bool done, OverwriteInPlaceLocked(n, in, off, data, len));
  if (done) return len;
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(n, in));

  // A write that does not fit whole is cut short at a block boundary, as Linux filesystems
  // do; ENOSPC only when not one block more fits. It is first cut to the holes the free
  // blocks can fill; when its extents also need extent blocks that are not there, the
  // transaction fails with ENOSPC, changing nothing, and a shorter write is tried.
  const uint64_t b0 = off / kBlockSize;
  uint64_t fit = BlocksUp(off + len);
  if (const uint64_t free = alloc_.free_blocks(); HoleBlocks(*map, b0, fit - b0) > free) {
    uint64_t lo = b0, hi = fit;  // holes up to `lo` fit, up to `hi` do not
    while (hi - lo > 1) {
      uint64_t mid = lo + (hi - lo) / 2;
      (HoleBlocks(*map, b0, mid - b0) <= free ? lo : hi) = mid;
    }
    fit = lo;
  }
  for (;;) {
    if (fit <= b0) return Err(ENOSPC, "no space for the write");
    size_t count = static_cast<size_t>(std::min<uint64_t>(off + len, fit * kBlockSize) - off);
    auto r = WriteRangeLocked(ctx, n, in, off, data, count);
    if (r.ok() || r.code() != ENOSPC) return r;
    PMEMFS_ASSIGN_OR_RETURN(in, LoadInode(ino));  // the aborted transaction changed nothing
    PMEMFS_ASSIGN_OR_RETURN(map, Extents(n, in));
    fit -= 1 + (fit - b0) / format::kExtentsPerBlock;  // room for another extent block
  }
}

Result<size_t> FileSystem::WriteRangeLocked(const Ctx& ctx, Node& node, Inode in, uint64_t off, const void* data,
                                            size_t len) {
  const uint64_t ino = node.ino;
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(node, in));
  uint64_t b0 = off / kBlockSize, b1 = BlocksUp(off + len);
  auto needs_zero = [&](uint64_t b) {
    const Extent* e = map->Next(b);
    return !e || e->lblk > b || (e->flags & format::kExtentUnwritten);
  };
  bool zero_head = (off % kBlockSize) && needs_zero(b0);
  bool zero_tail = ((off + len) % kBlockSize) && needs_zero(b1 - 1);

  // A write into an unwritten extent splits it, so random writes into a preallocated file
  // would leave an extent per block. As ext4's zeroout does, the conversion takes in the
  // rest of the aligned window around the write that lies in the same unwritten extent and
  // below EOF; those blocks are zeroed first (unwritten blocks are nobody's data yet).
  constexpr uint64_t kZerooutBlocks = 16;
  const uint64_t eof_blk = BlocksUp(std::max<uint64_t>(in.size, off + len));
  uint64_t c0 = b0, c1 = b1;
  if (const Extent* e = map->Next(b0); e && e->lblk <= b0 && (e->flags & format::kExtentUnwritten))
    c0 = std::max(e->lblk, b0 / kZerooutBlocks * kZerooutBlocks);
  if (const Extent* e = map->Next(b1 - 1); e && e->lblk <= b1 - 1 && (e->flags & format::kExtentUnwritten))
    c1 = std::min({e->lblk + e->len, (b1 + kZerooutBlocks - 1) / kZerooutBlocks * kZerooutBlocks, std::max(eof_blk, b1)});

  Tx tx(*region_);
  DropCaches(tx, node);
  // Pass 1: every block of the range mapped and written.
  PMEMFS_TRY(AllocateLocked(tx, in, *map, b0, b1 - b0, false, 1));
  // Everything that can fail is staged before the first store into a block, so a failed
  // (or retried, shorter) write leaves the bytes as they were.
  PMEMFS_TRY(KillPrivsLocked(ctx, tx, node, in, /*chown=*/false));
  auto block_off = [&](uint64_t b) {
    const Extent* e = map->Next(b);
    return (e->pblk + (b - e->lblk)) * kBlockSize;
  };
  for (uint64_t b = c0; b < b0; ++b) region_->ZeroFlush(block_off(b), kBlockSize);
  for (uint64_t b = b1; b < c1; ++b) region_->ZeroFlush(block_off(b), kBlockSize);
  PMEMFS_TRY(map->SetFlags(tx, in, c0, c1 - c0, 0, alloc_));
  if (tx.log_bytes() > journal_.capacity()) return Err(EFBIG, "write too large for one transaction");
  if (zero_head) region_->ZeroFlush(block_off(b0), kBlockSize);
  if (zero_tail && (b1 - 1 != b0 || !zero_head)) region_->ZeroFlush(block_off(b1 - 1), kBlockSize);
  // Pass 2: the data, extent by extent.
  const auto* src = static_cast<const uint8_t*>(data);
  for (uint64_t pos = off, end = off + len; pos < end;) {
    const Extent* e = map->Next(pos / kBlockSize);
    uint64_t n = std::min(end, (e->lblk + e->len) * kBlockSize) - pos;
    region_->CopyFlush(e->pblk * kBlockSize + (pos - e->lblk * kBlockSize), src + (pos - off), n);
    pos += n;
  }
  in.size = std::max<uint64_t>(in.size, off + len);
  in.mtime = in.ctime = Now();
  PutInode(tx, ino, in);
  PMEMFS_TRY(Commit(tx));  // the data copied above is drained before the log
  return len;
}

Status FileSystem::TruncateBlocksLocked(Node& node, uint64_t from) {
  const uint64_t ino = node.ino;
  // Batches, each one transaction that fits the log: blocks are released from the end, so
  // every intermediate state is a valid file (blocks beyond EOF are legal).
  const uint64_t budget = std::max<uint64_t>(journal_.capacity() / 4 * 8, 64);
  for (;;) {
    PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
    PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(node, in));
    const auto& ents = map->entries();
    if (ents.empty() || std::prev(ents.end())->second.e.lblk + std::prev(ents.end())->second.e.len <= from) break;
    uint64_t lo = from, spent = 0;
    int count = 0;
    for (auto it = ents.rbegin(); it != ents.rend(); ++it) {
      const Extent& e = it->second.e;
      if (e.lblk + e.len <= from) break;
      uint64_t start = std::max(from, e.lblk), n = e.lblk + e.len - start;
      if (++count > 256) {  // enough extents for one transaction: stop after the previous one
        lo = e.lblk + e.len;
        break;
      }
      if (spent + n > budget) {  // enough blocks: take the end of this extent
        lo = e.lblk + e.len - (budget - spent);
        break;
      }
      spent += n;
    }
    Tx tx(*region_);
    DropCaches(tx, node);
    std::vector<Run> freed;
    PMEMFS_TRY(map->Remove(tx, in, lo, kNoEnd - lo, &freed, alloc_));
    for (const Run& r : freed) {
      alloc_.StageFree(tx, r);
      in.blocks -= r.len;
    }
    PutInode(tx, ino, in);
    PMEMFS_TRY(Commit(tx));
  }
  return Ok();
}

Status FileSystem::ClearPastEofLocked(Node& n, uint64_t upto) {
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(n.ino));
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(n, in));
  const uint64_t eof_blk = BlocksUp(in.size);
  const auto& ents = map->entries();
  for (auto it = ents.rbegin(); it != ents.rend() && it->second.e.lblk + it->second.e.len > eof_blk; ++it) {
    if (!(it->second.e.flags & format::kExtentUnwritten)) {
      // A truncate released its blocks in batches and was cut short: they still hold data.
      PMEMFS_TRY(TruncateBlocksLocked(n, eof_blk));
      break;
    }
  }
  if (in.size % kBlockSize == 0) return Ok();
  const uint64_t b = in.size / kBlockSize;
  const uint64_t end = std::min(upto, (b + 1) * kBlockSize);
  const Extent* e = map->Next(b);
  if (end <= in.size || !e || e->lblk > b || (e->flags & format::kExtentUnwritten)) return Ok();
  // Past EOF nothing is visible, so these stores need no transaction; the commit that
  // raises the size drains them first.
  region_->ZeroFlush((e->pblk + (b - e->lblk)) * kBlockSize + in.size % kBlockSize, end - in.size);
  return Ok();
}

Status FileSystem::SetSizeLocked(Node& n, uint64_t size, const std::function<Status(Tx&, Inode&)>& also) {
  const uint64_t ino = n.ino;
  PMEMFS_ASSIGN_OR_RETURN(Inode cur, LoadInode(ino));
  if (size > cur.size) PMEMFS_TRY(ClearPastEofLocked(n, size));
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  Tx tx(*region_);
  DropCaches(tx, n);
  bool shrink = size < in.size;
  in.size = size;
  in.mtime = in.ctime = Now();
  if (also) PMEMFS_TRY(also(tx, in));
  PutInode(tx, ino, in);
  PMEMFS_TRY(Commit(tx));
  // Blocks past the new EOF go in later transactions; if a crash cuts this short, the
  // next growth releases what is left (ClearPastEofLocked).
  if (shrink) return TruncateBlocksLocked(n, BlocksUp(size));
  return Ok();
}

Status FileSystem::Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const Ctx& ctx) {
  constexpr int kKnown = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~kKnown) return Err(EOPNOTSUPP, "fallocate mode not supported");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
    return Err(EOPNOTSUPP, "punch hole requires keep size");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE)) return Err(EOPNOTSUPP, "conflicting modes");
  if (len == 0) return Err(EINVAL, "fallocate of zero length");
  if (off >= kMaxFileSize || len > kMaxFileSize - off) return Err(EFBIG, "fallocate beyond the maximum file size");
  NodeRef node = GetNode(ino);
  std::unique_lock lk(node->mu);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (S_ISDIR(in.mode)) return Err(EISDIR, "fallocate of a directory");
  if (!S_ISREG(in.mode)) return Err(ENODEV, "fallocate of a special file");
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(*node, in));
  uint64_t end = off + len;
  uint64_t b0 = off / kBlockSize, b1 = BlocksUp(end);
  bool immutable = in.flags & format::kInodeImmutableExtents;
  bool grows = !(mode & FALLOC_FL_KEEP_SIZE) && end > in.size;
  if (grows && !immutable) {
    PMEMFS_TRY(ClearPastEofLocked(*node, end));
    PMEMFS_ASSIGN_OR_RETURN(in, LoadInode(ino));
    PMEMFS_ASSIGN_OR_RETURN(map, Extents(*node, in));
  }

  // The bytes of [lo, hi) that lie in written blocks, as region ranges. They are found
  // before the transaction changes the map and zeroed only once everything that can fail
  // has been staged, so a call that fails (ENOSPC for a map block, EFBIG) changes nothing.
  std::vector<std::pair<uint64_t, uint64_t>> zeros;
  auto zero_later = [&](uint64_t lo, uint64_t hi) {
    for (uint64_t pos = lo; pos < hi;) {
      const Extent* e = map->Next(pos / kBlockSize);
      if (!e || e->lblk * kBlockSize >= hi) break;
      pos = std::max(pos, e->lblk * kBlockSize);
      uint64_t n = std::min(hi, (e->lblk + e->len) * kBlockSize) - pos;
      if (!(e->flags & format::kExtentUnwritten)) zeros.emplace_back(e->pblk * kBlockSize + (pos - e->lblk * kBlockSize), n);
      pos += n;
    }
  };
  auto zero_and_commit = [&](Tx& tx) -> Status {
    if (tx.log_bytes() > journal_.capacity()) return Err(EFBIG, "fallocate too large for one transaction");
    for (const auto& [at, n] : zeros) region_->ZeroFlush(at, n);
    region_->Drain();
    return Commit(tx);
  };

  if (mode & FALLOC_FL_PUNCH_HOLE) {
    if (immutable) return CheckImmutableChangeLocked(ino, in, "punch hole");
    uint64_t w0 = BlocksUp(off), w1 = end / kBlockSize;  // whole blocks
    Tx tx(*region_);
    DropCaches(tx, *node);
    if (w0 >= w1) {
      zero_later(off, end);
    } else {
      zero_later(off, w0 * kBlockSize);
      zero_later(w1 * kBlockSize, end);
      std::vector<Run> freed;
      PMEMFS_TRY(map->Remove(tx, in, w0, w1 - w0, &freed, alloc_));
      uint64_t n = 0;
      for (const Run& r : freed) n += r.len;
      if (n * 2 > journal_.capacity() * 8) return Err(EFBIG, "punch range too large for one transaction");
      for (const Run& r : freed) {
        alloc_.StageFree(tx, r);
        in.blocks -= r.len;
      }
    }
    in.mtime = in.ctime = Now();
    PMEMFS_TRY(KillPrivsLocked(ctx, tx, *node, in, /*chown=*/false));
    PutInode(tx, ino, in);
    return zero_and_commit(tx);
  }

  uint64_t holes = HoleBlocks(*map, b0, b1 - b0);
  if (immutable) {
    // Allowed only when it changes neither the map nor the size.
    bool converts = false;
    if (mode & FALLOC_FL_ZERO_RANGE) {
      for (uint64_t p = b0; p < b1;) {
        const Extent* e = map->Next(p);
        if (!e || e->lblk >= b1) break;
        if (e->flags & format::kExtentUnwritten) converts = true;
        p = e->lblk + e->len;
      }
    }
    if (holes || grows || converts) return CheckImmutableChangeLocked(ino, in, "fallocate");
    if (mode & FALLOC_FL_ZERO_RANGE) {
      zero_later(off, end);
      for (const auto& [at, n] : zeros) region_->ZeroFlush(at, n);
      region_->Drain();
    }
    return Ok();
  }
  if (holes > alloc_.free_blocks()) return Err(ENOSPC, "no space for fallocate");
  Tx tx(*region_);
  DropCaches(tx, *node);
  if (mode & FALLOC_FL_ZERO_RANGE) {
    uint64_t w0 = BlocksUp(off), w1 = end / kBlockSize;
    if (w0 < w1) {
      zero_later(off, w0 * kBlockSize);
      zero_later(w1 * kBlockSize, end);
      PMEMFS_TRY(map->SetFlags(tx, in, w0, w1 - w0, format::kExtentUnwritten, alloc_));
    } else {
      zero_later(off, end);
    }
  }
  PMEMFS_TRY(AllocateLocked(tx, in, *map, b0, b1 - b0, true, 1));
  if (grows) in.size = end;
  in.ctime = Now();
  if (grows || (mode & FALLOC_FL_ZERO_RANGE)) in.mtime = in.ctime;
  PMEMFS_TRY(KillPrivsLocked(ctx, tx, *node, in, /*chown=*/false));
  PutInode(tx, ino, in);
  return zero_and_commit(tx);
}

Result<uint64_t> FileSystem::Lseek(uint64_t ino, uint64_t off, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Err(EINVAL, "lseek whence");
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  if (off >= in.size) return Err(ENXIO, "offset at or beyond EOF");
  PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(*n, in));
  // Unwritten extents read as zeros and count as holes, as on ext4 and XFS.
  uint64_t pos = off;
  if (whence == SEEK_DATA) {
    for (;;) {
      const Extent* e = map->Next(pos / kBlockSize);
      if (!e) return Err(ENXIO, "no data after offset");
      uint64_t start = std::max(pos, e->lblk * kBlockSize);
      if (start >= in.size) return Err(ENXIO, "no data after offset");
      if (!(e->flags & format::kExtentUnwritten)) return start;
      pos = (e->lblk + e->len) * kBlockSize;
    }
  }
  for (;;) {
    const Extent* e = map->Next(pos / kBlockSize);
    if (!e || e->lblk * kBlockSize > pos || (e->flags & format::kExtentUnwritten)) return std::min(pos, in.size);
    pos = (e->lblk + e->len) * kBlockSize;
    if (pos >= in.size) return in.size;
  }
}

Result<size_t> FileSystem::CopyFileRange(uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out,
                                         size_t len, const Ctx& ctx) {
  // Two files: their nodes by inode number, the source shared.
  NodeRef in_node = GetNode(ino_in), out_node = GetNode(ino_out);
  std::shared_lock<std::shared_mutex> in_lock(in_node->mu, std::defer_lock);
  std::unique_lock<std::shared_mutex> out_lock(out_node->mu, std::defer_lock);
  if (ino_in == ino_out) {
    out_lock.lock();
  } else if (ino_in < ino_out) {
    in_lock.lock();
    out_lock.lock();
  } else {
    out_lock.lock();
    in_lock.lock();
  }
  PMEMFS_ASSIGN_OR_RETURN(Inode src, LoadInode(ino_in));
  if (!S_ISREG(src.mode)) return Err(EINVAL, "copy from a non-regular file");
  if (off_in >= src.size) return size_t{0};
  len = std::min<uint64_t>(len, src.size - off_in);
  if (ino_in == ino_out && off_in < off_out + len && off_out < off_in + len)
    return Err(EINVAL, "overlapping copy within one file");
  // Through a bounce buffer: the source blocks are read while the destination allocates.
  constexpr size_t kChunk = 1 << 20;
  std::vector<uint8_t> buf(std::min(len, kChunk));
  size_t done = 0;
  while (done < len) {
    size_t n = std::min(kChunk, len - done);
    PMEMFS_ASSIGN_OR_RETURN(Inode cur, LoadInode(ino_in));
    PMEMFS_ASSIGN_OR_RETURN(ExtentMap * map, Extents(*in_node, cur));
    std::memset(buf.data(), 0, n);
    for (uint64_t pos = off_in + done, end = pos + n; pos < end;) {
      const Extent* e = map->Next(pos / kBlockSize);
      if (!e || e->lblk * kBlockSize >= end) break;
      pos = std::max(pos, e->lblk * kBlockSize);
      uint64_t m = std::min(end, (e->lblk + e->len) * kBlockSize) - pos;
      if (!(e->flags & format::kExtentUnwritten))
        std::memcpy(buf.data() + (pos - off_in - done), region_->base() + e->pblk * kBlockSize + (pos - e->lblk * kBlockSize), m);
      pos += m;
    }
    auto w = WriteLocked(ctx, *out_node, off_out + done, buf.data(), n);
    if (!w.ok()) {
      if (done > 0) break;  // as write(): what was copied is the result
      return Error(w.error());
    }
    done += *w;
    if (*w < n) break;  // the destination is full
  }
  return done;
}

}  // namespace pmemfs::fs
