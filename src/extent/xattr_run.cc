// SPDX-License-Identifier: BSD-3-Clause
#include "extent/xattr_run.h"

#include <cstring>

#include "extent/records.h"

namespace pmemfs::extent {

using format::XattrBlockHeader;
using format::XattrEntry;

namespace {
uint64_t EntrySize(uint64_t name_len, uint64_t value_len) {
  return (sizeof(XattrEntry) + name_len + value_len + 3) & ~uint64_t{3};
}
}  // namespace

Result<XattrRun> ReadXattrRun(const pmem::Region& region, const format::Superblock& sb, uint64_t ino,
                              uint64_t off) {
  XattrRun run;
  if (off == 0) return run;
  if (!BlockRefOk(sb, off)) return Err(EUCLEAN, "xattr run outside the data area");
  XattrBlockHeader h;
  std::memcpy(&h, region.base() + off, sizeof(h));
  run.nblocks = h.nblocks ? h.nblocks : 1;
  if (h.magic != format::kXattrBlockMagic || h.owner != ino || run.nblocks > format::kMaxXattrBlocks ||
      !InDataArea(sb, off / format::kBlockSize, run.nblocks) || h.used > format::XattrRunSpace(run.nblocks))
    return Err(EUCLEAN, "xattr run damaged");
  const uint8_t* p = region.base() + off + sizeof(h);
  uint64_t pos = 0;
  for (uint32_t i = 0; i < h.count; ++i) {
    XattrEntry e;
    if (pos + sizeof(e) > h.used) return Err(EUCLEAN, "xattr entry overruns its run");
    std::memcpy(&e, p + pos, sizeof(e));
    uint64_t value_len = e.value_len | uint64_t{e.value_len_hi} << 16;
    uint64_t sz = EntrySize(e.name_len, value_len);
    if (e.name_len == 0 || value_len > kXattrValueMax || pos + sz > h.used)
      return Err(EUCLEAN, "xattr entry overruns its run");
    const char* n = reinterpret_cast<const char*>(p + pos + sizeof(e));
    run.list.emplace_back(std::string(n, e.name_len), std::string(n + e.name_len, value_len));
    pos += sz;
  }
  return run;
}

uint64_t XattrRunBlocks(const XattrList& list) {
  if (list.empty()) return 0;
  uint64_t used = sizeof(XattrBlockHeader);
  for (const auto& [n, v] : list) used += EntrySize(n.size(), v.size());
  return (used + format::kBlockSize - 1) / format::kBlockSize;
}

std::vector<uint8_t> SerializeXattrRun(const XattrList& list, uint64_t ino, uint32_t nblocks) {
  uint64_t used = 0;
  for (const auto& [n, v] : list) used += EntrySize(n.size(), v.size());
  std::vector<uint8_t> out(sizeof(XattrBlockHeader) + used, 0);
  XattrBlockHeader h{format::kXattrBlockMagic, static_cast<uint32_t>(list.size()), static_cast<uint32_t>(used),
                     nblocks, ino, 0};
  std::memcpy(out.data(), &h, sizeof(h));
  uint64_t pos = sizeof(h);
  for (const auto& [n, v] : list) {
    XattrEntry e{static_cast<uint8_t>(n.size()), static_cast<uint8_t>(v.size() >> 16),
                 static_cast<uint16_t>(v.size())};
    std::memcpy(out.data() + pos, &e, sizeof(e));
    std::memcpy(out.data() + pos + sizeof(e), n.data(), n.size());
    std::memcpy(out.data() + pos + sizeof(e) + n.size(), v.data(), v.size());
    pos += EntrySize(n.size(), v.size());
  }
  return out;
}

}  // namespace pmemfs::extent
