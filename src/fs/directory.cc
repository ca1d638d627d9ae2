// SPDX-License-Identifier: BSD-3-Clause
#include "fs/directory.h"

#include <bit>
#include <cstring>

#include "common/crc32c.h"

namespace pmemfs::fs {

using format::Dirent;
using format::kDirSlotsPerBlock;
using format::kDirSlotSize;

uint32_t NameHash(std::string_view name) { return Crc32c(name.data(), name.size()); }

namespace {
uint64_t Mask(uint32_t first, uint32_t n) { return (n == 64 ? ~0ull : ((1ull << n) - 1)) << first; }
}  // namespace

Result<DirIndex> DirIndex::Load(const pmem::Region& region, std::vector<uint64_t> blocks) {
  DirIndex d(region);
  d.blocks_ = std::move(blocks);
  d.used_.assign(d.blocks_.size(), 0);
  d.starts_.assign(d.blocks_.size(), 0);
  d.names_.reserve(d.blocks_.size() * 16);
  for (uint64_t b = 0; b < d.blocks_.size(); ++b) {
    const uint8_t* blk = region.base() + d.blocks_[b];
    for (uint32_t s = 0; s < kDirSlotsPerBlock;) {
      Dirent de;
      std::memcpy(&de, blk + s * kDirSlotSize, sizeof(de));
      if (de.ino == 0) {
        ++s;
        continue;
      }
      if (de.name_len == 0 || de.nslots != format::DirentSlots(de.name_len) || s + de.nslots > kDirSlotsPerBlock)
        return Err(EUCLEAN, "directory entry malformed");
      std::string name(reinterpret_cast<const char*>(blk + s * kDirSlotSize + sizeof(Dirent)), de.name_len);
      if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos || name == "." || name == "..")
        return Err(EUCLEAN, "directory entry has an invalid name");
      if (!d.names_.emplace(std::move(name), b * kDirSlotsPerBlock + s).second)
        return Err(EUCLEAN, "directory has a duplicate name");
      d.used_[b] |= Mask(s, de.nslots);
      d.starts_[b] |= 1ull << s;
      s += de.nslots;
    }
  }
  return d;
}

int64_t DirIndex::Find(std::string_view name) const {
  auto it = names_.find(std::string(name));
  return it == names_.end() ? -1 : static_cast<int64_t>(it->second);
}

DirEntryView DirIndex::At(uint64_t slotno) const {
  const uint8_t* p = region_->base() + SlotOff(slotno);
  Dirent de;
  std::memcpy(&de, p, sizeof(de));
  return DirEntryView{de.ino, de.hash, de.type,
                      std::string_view(reinterpret_cast<const char*>(p + sizeof(Dirent)), de.name_len), slotno};
}

bool DirIndex::NextFrom(uint64_t slotno, DirEntryView* out) const {
  for (uint64_t b = slotno / kDirSlotsPerBlock; b < blocks_.size(); ++b) {
    uint64_t first = b == slotno / kDirSlotsPerBlock ? slotno % kDirSlotsPerBlock : 0;
    uint64_t m = starts_[b] & ~Mask(0, static_cast<uint32_t>(first));
    if (m) {
      *out = At(b * kDirSlotsPerBlock + std::countr_zero(m));
      return true;
    }
  }
  return false;
}

int64_t DirIndex::FindFree(uint32_t name_len) const {
  uint32_t n = format::DirentSlots(name_len);
  for (uint64_t i = 0; i < blocks_.size(); ++i) {
    uint64_t b = (free_hint_ + i) % blocks_.size();
    uint64_t used = used_[b];
    if (used == ~0ull) continue;
    for (uint32_t s = 0; s + n <= kDirSlotsPerBlock; ++s) {
      if ((used & Mask(s, n)) == 0) {
        free_hint_ = b;
        return static_cast<int64_t>(b * kDirSlotsPerBlock + s);
      }
      // Skip past the next used slot.
      uint64_t above = used >> s;
      if (above & 1) s += std::countr_one(above) - 1;
    }
  }
  return -1;
}

void DirIndex::AddBlock(uint64_t region_off) {
  blocks_.push_back(region_off);
  used_.push_back(0);
  starts_.push_back(0);
  free_hint_ = blocks_.size() - 1;
}

void DirIndex::StageAdd(extent::Tx& tx, uint64_t slotno, std::string_view name, uint64_t ino, uint8_t type) {
  uint8_t buf[format::kDirSlotSize * 5] = {};
  Dirent de{};
  de.ino = ino;
  de.hash = NameHash(name);
  de.type = type;
  de.name_len = static_cast<uint8_t>(name.size());
  de.nslots = static_cast<uint8_t>(format::DirentSlots(de.name_len));
  std::memcpy(buf, &de, sizeof(de));
  std::memcpy(buf + sizeof(de), name.data(), name.size());
  tx.Write(SlotOff(slotno), buf, static_cast<uint32_t>(sizeof(de) + name.size()));
  uint64_t b = slotno / kDirSlotsPerBlock;
  uint32_t s = slotno % kDirSlotsPerBlock;
  used_[b] |= Mask(s, de.nslots);
  starts_[b] |= 1ull << s;
  names_.emplace(std::string(name), slotno);
}

void DirIndex::StageRemove(extent::Tx& tx, uint64_t slotno) {
  // Through the Tx: the entry may have been staged by this same transaction.
  Dirent de;
  tx.Read(SlotOff(slotno), &de, sizeof(de));
  std::string name(de.name_len, '\0');
  tx.Read(SlotOff(slotno) + sizeof(de), name.data(), de.name_len);
  names_.erase(name);
  // Every slot of the entry: a name longer than one slot's 48 bytes runs on into the next
  // slots, and left there its bytes would later parse as entries.
  static const uint8_t kZeros[format::kDirSlotSize * 5] = {};
  tx.Write(SlotOff(slotno), kZeros, static_cast<uint32_t>(de.nslots * format::kDirSlotSize));
  uint64_t b = slotno / kDirSlotsPerBlock;
  uint32_t s = slotno % kDirSlotsPerBlock;
  used_[b] &= ~Mask(s, de.nslots);
  starts_[b] &= ~(1ull << s);
  free_hint_ = b;
}

void DirIndex::StageRetarget(extent::Tx& tx, uint64_t slotno, uint64_t ino, uint8_t type) {
  Dirent de;
  tx.Read(SlotOff(slotno), &de, sizeof(de));
  de.ino = ino;
  de.type = type;
  tx.Put(SlotOff(slotno), de);
}

}  // namespace pmemfs::fs
