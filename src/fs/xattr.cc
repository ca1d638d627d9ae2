// Extended attributes: one block per inode holding them all, rewritten as a whole through
// the journal. The pmemfs.* names in the user namespace are virtual (immutable.cc).
#include <spdlog/spdlog.h>
#include <sys/xattr.h>

#include <cstring>

#include "extent/records.h"
#include "fs/filesystem.h"
#include "fs/immutable.h"

namespace pmemfs::fs {

using extent::Tx;
using format::Inode;
using format::kBlockSize;

namespace {

constexpr size_t kXattrSizeMax = 65536;  // XATTR_SIZE_MAX

using XattrList = std::vector<std::pair<std::string, std::string>>;

Status ValidXattrName(std::string_view name) {
  if (name.empty() || name.size() > 255) return Err(ERANGE, "xattr name length");
  for (std::string_view ns : {"user.", "trusted.", "security."}) {
    if (name.size() > ns.size() && name.substr(0, ns.size()) == ns) return Ok();
  }
  return Err(EOPNOTSUPP, "xattr namespace not supported");
}

size_t EntrySize(const std::string& n, const std::string& v) {
  return (sizeof(format::XattrEntry) + n.size() + v.size() + 3) & ~size_t{3};
}

// The block image of `list`: header then packed entries.
std::vector<uint8_t> SerializeXattrs(const XattrList& list, uint64_t ino) {
  size_t used = 0;
  for (auto& [n, v] : list) used += EntrySize(n, v);
  std::vector<uint8_t> blk(sizeof(format::XattrBlockHeader) + used, 0);
  format::XattrBlockHeader h{format::kXattrBlockMagic, static_cast<uint32_t>(list.size()),
                             static_cast<uint32_t>(used), 0, ino, 0};
  std::memcpy(blk.data(), &h, sizeof(h));
  size_t pos = sizeof(h);
  for (auto& [n, v] : list) {
    format::XattrEntry e{static_cast<uint8_t>(n.size()), 0, static_cast<uint16_t>(v.size())};
    std::memcpy(blk.data() + pos, &e, sizeof(e));
    std::memcpy(blk.data() + pos + sizeof(e), n.data(), n.size());
    std::memcpy(blk.data() + pos + sizeof(e) + n.size(), v.data(), v.size());
    pos += EntrySize(n, v);
  }
  return blk;
}

}  // namespace

static Result<XattrList> ParseXattrs(const pmem::Region& region, uint64_t ino, const Inode& in) {
  XattrList out;
  if (!in.xattr_block) return out;
  const auto* h = region.At<format::XattrBlockHeader>(in.xattr_block);
  if (h->magic != format::kXattrBlockMagic || h->owner != ino || h->used > format::kXattrSpace)
    return Err(EUCLEAN, "xattr block damaged");
  const uint8_t* p = region.base() + in.xattr_block + sizeof(*h);
  size_t pos = 0;
  for (uint32_t i = 0; i < h->count; ++i) {
    format::XattrEntry e;
    if (pos + sizeof(e) > h->used) return Err(EUCLEAN, "xattr entry overruns block");
    std::memcpy(&e, p + pos, sizeof(e));
    size_t sz = (sizeof(e) + e.name_len + e.value_len + 3) & ~size_t{3};
    if (e.name_len == 0 || pos + sz > h->used) return Err(EUCLEAN, "xattr entry overruns block");
    const char* n = reinterpret_cast<const char*>(p + pos + sizeof(e));
    out.emplace_back(std::string(n, e.name_len), std::string(n + e.name_len, e.value_len));
    pos += sz;
  }
  return out;
}

Status FileSystem::SetXattr(const Ctx& ctx, uint64_t ino, std::string_view name, std::string_view value,
                            int flags) {
  if (IsVirtualXattr(name)) return SetVirtualXattr(ctx, ino, name, value, flags);
  PMEMFS_TRY(ValidXattrName(name));
  if (value.size() > kXattrSizeMax) return Err(E2BIG, "xattr value too large");
  if ((flags & XATTR_CREATE) && (flags & XATTR_REPLACE)) return Err(EINVAL, "conflicting xattr flags");
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(XattrList list, ParseXattrs(*region_, ino, in));
  auto it = std::find_if(list.begin(), list.end(), [&](auto& kv) { return kv.first == name; });
  if (it != list.end() && (flags & XATTR_CREATE)) return Err(EEXIST, "xattr exists");
  if (it == list.end() && (flags & XATTR_REPLACE)) return Err(ENODATA, "no such xattr");
  if (it != list.end()) it->second = std::string(value);
  else list.emplace_back(std::string(name), std::string(value));
  size_t used = 0;
  for (auto& [n, v] : list) used += EntrySize(n, v);
  if (used > format::kXattrSpace) return Err(ENOSPC, "no room for the xattr in the inode's xattr block");

  Tx tx(*region_);
  if (!in.xattr_block) {
    PMEMFS_ASSIGN_OR_RETURN(extent::Run r, alloc_.Reserve(1, extent::InodeOff(sb_, ino) / kBlockSize, 1, true));
    alloc_.StageUse(tx, r);
    in.xattr_block = format::BlockOff(r.start);
    in.blocks += 1;
  }
  std::vector<uint8_t> blk = SerializeXattrs(list, ino);
  tx.Write(in.xattr_block, blk.data(), static_cast<uint32_t>(blk.size()));
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  in.ctime = format::Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec), 0};
  PutInode(tx, ino, in);
  return Commit(tx);
}

Result<std::string> FileSystem::GetXattr(uint64_t ino, std::string_view name) {
  if (IsVirtualXattr(name)) return GetVirtualXattr(ino, name);
  PMEMFS_TRY(ValidXattrName(name));
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(XattrList list, ParseXattrs(*region_, ino, in));
  for (auto& [n, v] : list)
    if (n == name) return v;
  return Err(ENODATA, "no such xattr");
}

Result<std::vector<std::string>> FileSystem::ListXattr(uint64_t ino) {
  std::shared_lock lk(mu_);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(XattrList list, ParseXattrs(*region_, ino, in));
  std::vector<std::string> names;
  for (auto& [n, v] : list) names.push_back(n);
  return names;
}

Status FileSystem::RemoveXattr(const Ctx& ctx, uint64_t ino, std::string_view name) {
  if (IsVirtualXattr(name)) return RemoveVirtualXattr(ctx, ino, name);
  PMEMFS_TRY(ValidXattrName(name));
  std::unique_lock lk(mu_);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  Tx tx(*region_);
  PMEMFS_ASSIGN_OR_RETURN(bool dropped, StageDropXattrLocked(tx, ino, in, name));
  if (!dropped) return Err(ENODATA, "no such xattr");
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  in.ctime = format::Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec), 0};
  PutInode(tx, ino, in);
  return Commit(tx);
}

Result<bool> FileSystem::StageDropXattrLocked(Tx& tx, uint64_t ino, Inode& in, std::string_view name) {
  if (!in.xattr_block) return false;
  PMEMFS_ASSIGN_OR_RETURN(XattrList list, ParseXattrs(*region_, ino, in));
  auto it = std::find_if(list.begin(), list.end(), [&](auto& kv) { return kv.first == name; });
  if (it == list.end()) return false;
  list.erase(it);
  if (list.empty()) {
    // The block is freed, never written, by this transaction (the journal's replay rule).
    alloc_.StageFree(tx, extent::Run{in.xattr_block / kBlockSize, 1});
    in.xattr_block = 0;
    in.blocks -= 1;
  } else {
    std::vector<uint8_t> blk = SerializeXattrs(list, ino);
    tx.Write(in.xattr_block, blk.data(), static_cast<uint32_t>(blk.size()));
  }
  return true;
}

}  // namespace pmemfs::fs
