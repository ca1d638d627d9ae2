// SPDX-License-Identifier: BSD-3-Clause
#include "extent/superblock.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include "common/crc32c.h"

namespace pmemfs::extent {

using namespace format;

namespace {
uint64_t DivUp(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

Result<Superblock> ComputeLayout(uint64_t region_size, const MkfsOptions& opts) {
  region_size &= ~(kBlockSize - 1);
  static_assert(kMinRegionSize == 4ull << 20 && kMinJournalSize == 256ull << 10 && kMaxJournalSize == 1ull << 30 &&
                kMinInodes == 64, "update the messages below");
  if (region_size < kMinRegionSize) return Err(EINVAL, "region smaller than the minimum of 4 MiB");
  if (opts.journal_size && opts.journal_size < kMinJournalSize)
    return Err(EINVAL, "journal smaller than the minimum of 256 KiB (it must hold the largest transaction)");
  if (opts.journal_size > kMaxJournalSize) return Err(EINVAL, "journal larger than the maximum of 1 GiB");
  if (opts.inode_count && opts.inode_count < kMinInodes) return Err(EINVAL, "fewer inodes than the minimum of 64");
  if (opts.inode_count > kMaxInodes) return Err(EINVAL, "more inodes than the maximum of 2^32 - 1");
  Superblock sb{};
  sb.magic = kMagic;
  sb.major = kMajor;
  sb.minor = kMinor;
  sb.block_size = kBlockSize;
  sb.region_size = region_size;
  sb.total_blocks = region_size / kBlockSize;

  uint64_t journal = opts.journal_size ? opts.journal_size
                                       : std::clamp<uint64_t>(region_size / 256, kMinJournalSize, 16 << 20);
  journal = DivUp(journal, kBlockSize) * kBlockSize;
  uint64_t inodes = opts.inode_count ? opts.inode_count + 1 : std::max<uint64_t>(region_size / (16 << 10), 64);
  inodes = std::min<uint64_t>(inodes, uint64_t{1} << 32);

  uint64_t off = kBlockSize;
  sb.state_off = off;
  off += kBlockSize;
  sb.journal_off = off;
  sb.journal_size = journal;
  off += journal;
  sb.inode_bitmap_off = off;
  off += DivUp(DivUp(inodes, 8), kBlockSize) * kBlockSize;
  sb.inode_table_off = off;
  sb.inode_count = inodes;
  off += DivUp(inodes * sizeof(Inode), kBlockSize) * kBlockSize;
  sb.block_bitmap_off = off;
  sb.block_bitmap_size = DivUp(DivUp(sb.total_blocks, 8), kBlockSize) * kBlockSize;
  off += sb.block_bitmap_size;
  sb.data_off = off;
  sb.backup_off = region_size - kBlockSize;
  // At least a few data blocks: a root directory, and room to work.
  if (sb.data_off + 16 * kBlockSize > sb.backup_off)
    return Err(EINVAL, "region too small for its metadata (journal, inode table and bitmaps)");
  return sb;
}

void SealSuperblock(Superblock& sb) { sb.crc = Crc32c(&sb, offsetof(Superblock, crc)); }

Status ValidateSuperblock(const Superblock& sb, uint64_t region_size) {
  if (sb.magic != kMagic) return Err(ENODATA, "no pmemfs superblock");
  if (Crc32c(&sb, offsetof(Superblock, crc)) != sb.crc) return Err(EBADMSG, "superblock checksum mismatch");
  if (sb.major != kMajor) return Err(EPROTONOSUPPORT, "unsupported pmemfs major version");
  if (sb.incompat & ~kIncompatSupported) return Err(EPROTONOSUPPORT, "unsupported incompatible features");
  if (sb.block_size != kBlockSize) return Err(EUCLEAN, "superblock: bad block size");
  auto inside = [&](uint64_t off, uint64_t len) {
    return off % kBlockSize == 0 && off <= sb.region_size && len <= sb.region_size - off;
  };
  if (sb.region_size > region_size || sb.region_size % kBlockSize != 0 ||
      sb.total_blocks != sb.region_size / kBlockSize)
    return Err(EUCLEAN, "superblock: region size larger than the device");
  if (sb.inode_count < 2 || sb.inode_count > (uint64_t{1} << 32) || sb.journal_size < 2 * kBlockSize)
    return Err(EUCLEAN, "superblock: bad inode count or journal size");
  if (!inside(sb.state_off, kBlockSize) || !inside(sb.journal_off, sb.journal_size) ||
      !inside(sb.inode_bitmap_off, DivUp(sb.inode_count, 8)) ||
      !inside(sb.inode_table_off, sb.inode_count * sizeof(Inode)) ||
      !inside(sb.block_bitmap_off, sb.block_bitmap_size) ||
      sb.block_bitmap_size < DivUp(sb.total_blocks, 8) || !inside(sb.data_off, 0) ||
      sb.backup_off != sb.region_size - kBlockSize || sb.data_off > sb.backup_off)
    return Err(EUCLEAN, "superblock: area outside the region");
  // Areas must be in order and disjoint.
  // The state block shares block 1 with the superblock copy: it must be exactly there.
  if (!(sb.state_off == kBlockSize && sb.journal_off >= sb.state_off + kBlockSize &&
        sb.inode_bitmap_off >= sb.journal_off + sb.journal_size &&
        sb.inode_table_off >= sb.inode_bitmap_off + DivUp(sb.inode_count, 8) &&
        sb.block_bitmap_off >= sb.inode_table_off + sb.inode_count * sizeof(Inode) &&
        sb.data_off >= sb.block_bitmap_off + sb.block_bitmap_size))
    return Err(EUCLEAN, "superblock: overlapping areas");
  return Ok();
}

namespace {

Superblock SuperblockAt(const pmem::Region& region, uint64_t off, const HoleProbe& readable) {
  Superblock sb{};
  if (!readable || readable(off)) std::memcpy(&sb, region.base() + off, sizeof(sb));
  return sb;
}

uint64_t LastBlock(const pmem::Region& region) { return (region.size() & ~(kBlockSize - 1)) - kBlockSize; }

}  // namespace

Result<LoadedSuperblock> ReadSuperblock(const pmem::Region& region, const HoleProbe& readable) {
  if (region.size() < kMinRegionSize) return Err(ENODATA, "region too small to hold pmemfs");
  Superblock primary = SuperblockAt(region, 0, readable);
  Status status = ValidateSuperblock(primary, region.size());
  if (status.ok()) return LoadedSuperblock{primary, false, SuperblockSource::kPrimary};
  Superblock copy = SuperblockAt(region, kSuperblockCopyOff, readable);
  if (ValidateSuperblock(copy, region.size()).ok()) return LoadedSuperblock{copy, true, SuperblockSource::kCopy};
  // The backup is in the last block of the formatted size, which is the device's last block
  // unless the region file has grown since mkfs; a damaged primary may still name it.
  std::vector<uint64_t> spots = {LastBlock(region)};
  if (primary.magic == kMagic && primary.backup_off % kBlockSize == 0 && primary.backup_off >= kMinRegionSize - kBlockSize &&
      region.Contains(primary.backup_off, kBlockSize) && primary.backup_off != spots[0])
    spots.push_back(primary.backup_off);
  for (uint64_t off : spots) {
    Superblock backup = SuperblockAt(region, off, readable);
    if (ValidateSuperblock(backup, region.size()).ok() && backup.backup_off == off)
      return LoadedSuperblock{backup, true, SuperblockSource::kBackup};
  }
  if (status.code() == ENODATA && HasPmemfsSignature(region, readable))
    return Err(EUCLEAN, "pmemfs signature found but no valid superblock (primary, copy or backup)");
  return Error(status.error());
}

bool HasPmemfsSignature(const pmem::Region& region, const HoleProbe& readable) {
  if (region.size() < kMinRegionSize) return false;
  auto magic64 = [&](uint64_t off) {
    uint64_t m = 0;
    if (!readable || readable(off)) std::memcpy(&m, region.base() + off, sizeof(m));
    return m;
  };
  // The state block and the journal sit at fixed offsets in every layout mkfs writes.
  return magic64(0) == kMagic || magic64(kSuperblockCopyOff) == kMagic || magic64(LastBlock(region)) == kMagic ||
         magic64(kBlockSize) == kStateMagic || magic64(2 * kBlockSize) == kJournalMagic;
}

std::string UuidString(const uint8_t u[16]) {
  char s[37];
  std::snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return s;
}

namespace {

void SetBits(uint8_t* bitmap, uint64_t first, uint64_t count) {
  for (uint64_t b = first; b < first + count; ++b) bitmap[b / 8] |= uint8_t(1u << (b % 8));
}

}  // namespace

Status Format(pmem::Region& region, const MkfsOptions& opts) {
  if (region.read_only()) return Err(EROFS, "mkfs: region is read-only");
  PMEMFS_ASSIGN_OR_RETURN(Superblock sb, ComputeLayout(region.size(), opts));
  if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != sizeof(sb.uuid)) return Err(errno, "mkfs: getrandom");
  sb.uuid[6] = (sb.uuid[6] & 0x0f) | 0x40;  // RFC 4122 version 4
  sb.uuid[8] = (sb.uuid[8] & 0x3f) | 0x80;
  sb.mkfs_time = std::time(nullptr);
  std::memcpy(sb.label, opts.label.data(), std::min(opts.label.size(), sizeof(sb.label) - 1));
  SealSuperblock(sb);

  // Invalidate any old superblock first, so a crash mid-mkfs leaves no half-old filesystem.
  region.ZeroFlush(0, kBlockSize);
  region.ZeroFlush(sb.state_off, kBlockSize);  // the state block and the superblock copy
  region.ZeroFlush(sb.backup_off, kBlockSize);
  region.Drain();

  region.ZeroFlush(sb.journal_off, kBlockSize);  // the header is enough to empty the log
  region.ZeroFlush(sb.inode_bitmap_off, sb.inode_table_off - sb.inode_bitmap_off);
  region.ZeroFlush(sb.block_bitmap_off, sb.block_bitmap_size);

  StateBlock st{};
  st.magic = kStateMagic;
  region.CopyFlush(sb.state_off, &st, sizeof(st));

  // Block bitmap: fixed metadata, the backup superblock, and bits past the end are in use.
  uint8_t* bbm = region.base() + sb.block_bitmap_off;
  SetBits(bbm, 0, sb.data_off / kBlockSize);
  SetBits(bbm, sb.backup_off / kBlockSize, 1);
  SetBits(bbm, sb.total_blocks, sb.block_bitmap_size * 8 - sb.total_blocks);
  region.Flush(sb.block_bitmap_off, sb.block_bitmap_size);

  // Inode bitmap: slot 0 (never an inode), the root, and slots past inode_count.
  uint8_t* ibm = region.base() + sb.inode_bitmap_off;
  uint64_t ibm_bits = (sb.inode_table_off - sb.inode_bitmap_off) * 8;
  SetBits(ibm, 0, 2);
  SetBits(ibm, sb.inode_count, ibm_bits - sb.inode_count);
  region.Flush(sb.inode_bitmap_off, sb.inode_table_off - sb.inode_bitmap_off);

  Inode root{};
  root.mode = S_IFDIR | 0755;
  root.uid = opts.root_uid;
  root.gid = opts.root_gid;
  root.nlink = 2;
  root.generation = 1;
  root.parent = kRootIno;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  root.atime = root.mtime = root.ctime = root.btime = Timespec{now.tv_sec, uint32_t(now.tv_nsec), 0};
  root.crc = Crc32c(&root, offsetof(Inode, crc));
  region.CopyFlush(sb.inode_table_off + kRootIno * sizeof(Inode), &root, sizeof(root));
  region.Drain();  // everything the superblock describes is durable before it appears

  region.CopyFlush(sb.backup_off, &sb, sizeof(sb));
  region.CopyFlush(kSuperblockCopyOff, &sb, sizeof(sb));
  region.Drain();
  region.CopyFlush(0, &sb, sizeof(sb));
  region.Drain();
  return Ok();
}

}  // namespace pmemfs::extent
