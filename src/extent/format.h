// SPDX-License-Identifier: BSD-3-Clause
// The on-media format of pmemfs. Every structure written to the region is declared here,
// with fixed-width little-endian fields, explicit padding, and static_asserts on size and
// the offsets that matter. Offsets are byte offsets from the region start, never pointers.
// Enum values written to media never change meaning. docs/ARCHITECTURE.md has the picture.
//
//   block 0            superblock (primary)
//   block 1            state block (journaled: orphan list head)
//   journal            redo log, one transaction at a time
//   inode bitmap       1 bit per inode slot
//   inode table        256-byte inodes; inode number == slot index; 1 is the root
//   block bitmap       1 bit per 4 KiB block of the whole region (metadata blocks set)
//   data               file data, directory blocks, extent blocks, xattr blocks
//   last block         superblock (backup, written once by mkfs)
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace pmemfs::format {

static_assert(std::endian::native == std::endian::little, "pmemfs media is little-endian");

inline constexpr uint64_t kBlockSize = 4096;
inline constexpr uint32_t kBlockShift = 12;
inline constexpr uint64_t kMagic = 0x31305346'4D454D50ull;  // "PMEMFS01"
inline constexpr uint16_t kMajor = 1;
inline constexpr uint16_t kMinor = 3;  // 1: journal checksum XXH3-64; 2: multi-block xattr runs;
                                       // 3: in-place writes' time word; the inode checksum
                                       //    leaves it and the orphan links out
// Feature masks: none defined yet. A mount refuses unknown incompat bits and mounts
// read-only with unknown ro_compat bits.
inline constexpr uint64_t kIncompatSupported = 0;
inline constexpr uint64_t kRoCompatSupported = 0;

inline constexpr uint64_t kRootIno = 1;
inline constexpr uint64_t kMinRegionSize = 4ull << 20;

// ---------------------------------------------------------------------------------------
// Superblock: written by mkfs (and fsck) only; never changes while mounted. crc32c last,
// covering bytes [0, offsetof(crc)).
struct Superblock {
  uint64_t magic;
  uint16_t major;
  uint16_t minor;
  uint32_t block_size;
  uint64_t compat;
  uint64_t incompat;
  uint64_t ro_compat;
  uint8_t uuid[16];
  uint64_t region_size;       // bytes formatted (a multiple of kBlockSize)
  uint64_t total_blocks;
  uint64_t state_off;
  uint64_t journal_off;
  uint64_t journal_size;
  uint64_t inode_bitmap_off;
  uint64_t inode_table_off;
  uint64_t inode_count;       // slots, including the unused slot 0
  uint64_t block_bitmap_off;
  uint64_t block_bitmap_size;
  uint64_t data_off;          // first block not used by fixed metadata
  uint64_t backup_off;        // the backup superblock
  int64_t mkfs_time;          // seconds since the epoch
  uint8_t label[64];
  uint8_t reserved[284];      // zero
  uint32_t crc;
};
static_assert(sizeof(Superblock) == 512);
static_assert(offsetof(Superblock, uuid) == 40);
static_assert(offsetof(Superblock, region_size) == 56);
static_assert(offsetof(Superblock, label) == 160);
static_assert(offsetof(Superblock, crc) == 508);

// ---------------------------------------------------------------------------------------
// State block: the little global state that changes while mounted. Journaled.
inline constexpr uint64_t kStateMagic = 0x45544154'53534650ull;  // "PFSSTATE"
struct StateBlock {
  uint64_t magic;
  uint64_t orphan_head;   // first inode with nlink 0 still open (or being freed), 0 if none
  uint64_t reserved[6];
};
static_assert(sizeof(StateBlock) == 64);
static_assert(offsetof(StateBlock, orphan_head) % 8 == 0);

// ---------------------------------------------------------------------------------------
// Journal: a redo log holding at most one transaction. The header's checksum covers the
// header (checksum field zero) and the payload of `nrec` records, so a torn log is never
// replayed; the uuid ties it to this format, the seq orders it.
//
// The checksum is XXH3-64, not crc32c: a record copies structures that end in their own
// crc32c (inodes), and a CRC over a message followed by its own CRC under the same
// polynomial is a constant, so an outer crc32c cannot see a record torn between two
// self-consistent versions of such a structure (found by the crash tests).
inline constexpr uint64_t kJournalMagic = 0x4C4E524A'53534650ull;  // "PFSJRNL"
struct JournalHeader {
  uint64_t magic;
  uint64_t seq;
  uint8_t uuid[16];
  uint32_t nrec;
  uint32_t payload_len;   // bytes of records after the header
  uint64_t checksum;      // XXH3-64
  uint64_t reserved[2];
};
static_assert(sizeof(JournalHeader) == 64);
static_assert(offsetof(JournalHeader, seq) == 8);
static_assert(offsetof(JournalHeader, checksum) == 40);

// One redo record: `len` bytes to copy to region offset `off`, padded to 8 bytes.
struct JournalRecord {
  uint64_t off;
  uint32_t len;
  uint32_t reserved;
};
static_assert(sizeof(JournalRecord) == 16);

// ---------------------------------------------------------------------------------------
// Extents: logical block -> region block run. len == 0 marks a free slot.
enum ExtentFlags : uint32_t {
  kExtentUnwritten = 1u << 0,  // allocated, reads as zeros
};
struct Extent {
  uint64_t lblk;   // first logical block in the file
  uint64_t pblk;   // first region block
  uint32_t len;    // blocks; 0 = unused slot
  uint32_t flags;  // ExtentFlags
};
static_assert(sizeof(Extent) == 24);

// ---------------------------------------------------------------------------------------
// Inodes: 256 bytes, slot i of the inode table is inode number i.
struct Timespec {
  int64_t sec;
  uint32_t nsec;
  uint32_t pad;
};
static_assert(sizeof(Timespec) == 16);

enum InodeFlags : uint32_t {
  kInodeImmutableExtents = 1u << 0,  // extent map may not change (daxfile semantics)
  kInodeOrphan = 1u << 1,            // on the orphan list
};
inline constexpr uint32_t kInodeKnownFlags = kInodeImmutableExtents | kInodeOrphan;
inline constexpr int kInlineExtents = 3;

struct Inode {
  uint32_t mode;          // S_IFMT | permission bits; 0 = free slot
  uint32_t uid;
  uint32_t gid;
  uint32_t nlink;
  uint32_t flags;         // InodeFlags
  uint32_t generation;    // bumped each time the slot is reused
  uint8_t align_shift;    // log2 of the immutable-extents alignment, 0 when unset
  uint8_t pad[7];
  uint64_t size;
  uint64_t blocks;        // 4 KiB blocks owned: data, extent blocks, xattr block
  Timespec atime;
  Timespec mtime;
  Timespec ctime;
  Timespec btime;
  uint64_t rdev;
  uint64_t parent;        // directories: the inode of ".."
  uint64_t extent_block;  // first overflow ExtentBlock, or 0
  uint64_t xattr_block;   // XattrBlock, or 0
  uint64_t next_orphan;   // orphan list links (doubly linked: O(1) removal), or 0
  Extent inline_extents[kInlineExtents];
  uint64_t prev_orphan;
  // When not 0: the time (ns since the epoch) of an in-place write made after the last
  // journaled change of this inode, which is its mtime and ctime. Stored by that write
  // outside the journal, with its data; folded into mtime and ctime (and cleared) by the
  // next journaled change (extent/records.h). Format 1.3; 0 in older images.
  uint64_t data_time_ns;
  uint8_t reserved[12];
  uint32_t crc;           // crc32c of bytes [0, offsetof(crc)), data_time_ns and the orphan
                          // links counted as zero (extent/records.h)
};
static_assert(sizeof(Inode) == 256);
static_assert(offsetof(Inode, next_orphan) == 144);
static_assert(offsetof(Inode, data_time_ns) == 232 && offsetof(Inode, data_time_ns) % 8 == 0);
static_assert(offsetof(Inode, size) == 32);
static_assert(offsetof(Inode, atime) == 48);
static_assert(offsetof(Inode, rdev) == 112);
static_assert(offsetof(Inode, inline_extents) == 152);
static_assert(offsetof(Inode, prev_orphan) == 224);
static_assert(offsetof(Inode, crc) == 252);

// ---------------------------------------------------------------------------------------
// Extent blocks: the overflow of an inode's extent slots, a singly linked chain.
inline constexpr uint32_t kExtentBlockMagic = 0x4B4C4258;  // "XBLK"
inline constexpr int kExtentsPerBlock = 169;
struct ExtentBlock {
  uint32_t magic;
  uint32_t reserved0;
  uint64_t owner;         // inode number
  uint64_t next;          // next ExtentBlock offset, or 0
  uint64_t reserved1;
  Extent slots[kExtentsPerBlock];
  uint8_t pad[8];
};
static_assert(sizeof(ExtentBlock) == kBlockSize);
static_assert(offsetof(ExtentBlock, slots) == 32);

// ---------------------------------------------------------------------------------------
// Directory blocks: the logical blocks of a directory inode, 64 slots of 64 bytes. An entry
// takes 1..5 consecutive slots of one block (header + name); a slot with ino == 0 that is
// not covered by an entry is free. readdir offsets are slot numbers, stable while the
// directory changes because entries never move.
inline constexpr uint64_t kDirSlotSize = 64;
inline constexpr uint64_t kDirSlotsPerBlock = kBlockSize / kDirSlotSize;
inline constexpr uint32_t kMaxNameLen = 255;
struct Dirent {
  uint64_t ino;
  uint32_t hash;          // crc32c of the name
  uint8_t type;           // DT_* value (file type bits of mode >> 12)
  uint8_t name_len;
  uint8_t nslots;
  uint8_t reserved;
  // followed by name_len bytes of name (no terminator)
};
static_assert(sizeof(Dirent) == 16);
inline constexpr uint32_t DirentSlots(uint32_t name_len) {
  return static_cast<uint32_t>((sizeof(Dirent) + name_len + kDirSlotSize - 1) / kDirSlotSize);
}
static_assert(DirentSlots(kMaxNameLen) == 5);

// ---------------------------------------------------------------------------------------
// Xattr run: 1..kMaxXattrBlocks consecutive blocks holding all of an inode's extended
// attributes, packed after the header: {u8 name_len, u8 value_len_hi, u16 value_len, name,
// value}, each padded to 4 bytes; a value's length is value_len | value_len_hi << 16
// (up to XATTR_SIZE_MAX, 64 KiB). A run is never changed in place: a change writes a new
// run and switches the inode to it in one transaction (format 1.2; a 1.1 block is a run
// of one block, nblocks 0).
inline constexpr uint32_t kXattrBlockMagic = 0x52544158;  // "XATR"
inline constexpr uint32_t kMaxXattrBlocks = 64;           // 256 KiB of xattrs per inode
struct XattrBlockHeader {
  uint32_t magic;
  uint32_t count;
  uint32_t used;          // bytes of entries after the header
  uint32_t nblocks;       // blocks in the run; 0 means 1 (format 1.1)
  uint64_t owner;
  uint64_t reserved1;
};
static_assert(sizeof(XattrBlockHeader) == 32);
static_assert(offsetof(XattrBlockHeader, nblocks) == 12);
struct XattrEntry {
  uint8_t name_len;
  uint8_t value_len_hi;   // bits 16..23 of the value length
  uint16_t value_len;     // bits 0..15
};
static_assert(sizeof(XattrEntry) == 4);
inline constexpr uint32_t XattrRunSpace(uint32_t nblocks) {
  return static_cast<uint32_t>(nblocks * kBlockSize - sizeof(XattrBlockHeader));
}

static_assert(std::is_trivially_copyable_v<Superblock> && std::is_trivially_copyable_v<StateBlock> &&
              std::is_trivially_copyable_v<JournalHeader> && std::is_trivially_copyable_v<Inode> &&
              std::is_trivially_copyable_v<ExtentBlock> && std::is_trivially_copyable_v<Dirent> &&
              std::is_trivially_copyable_v<XattrBlockHeader>);

inline constexpr uint64_t BlockOff(uint64_t blk) { return blk << kBlockShift; }
inline constexpr uint64_t OffBlock(uint64_t off) { return off >> kBlockShift; }

}  // namespace pmemfs::format
