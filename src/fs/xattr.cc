// SPDX-License-Identifier: BSD-3-Clause
// Extended attributes: all of an inode's attributes live in one xattr run (format.h),
// replaced whole on every change: the new run is written into newly allocated blocks,
// unreachable until the transaction that points the inode at it commits (its first fence
// drains them), and the old run is freed by that same transaction. The journal carries
// only the inode and bitmap changes. The pmemfs.* names in the user namespace are virtual
// (immutable.cc).
#include <linux/capability.h>
#include <spdlog/spdlog.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>

#include "extent/records.h"
#include "extent/xattr_run.h"
#include "fs/filesystem.h"
#include "fs/immutable.h"

namespace pmemfs::fs {

using extent::Tx;
using extent::XattrList;
using format::Inode;
using format::kBlockSize;

namespace {

Status ValidXattrName(std::string_view name) {
  if (name.empty() || name.size() > 255) return Err(ERANGE, "xattr name length");
  for (std::string_view ns : {"user.", "trusted.", "security."}) {
    if (name.substr(0, ns.size()) != ns) continue;
    if (name.size() == ns.size()) return Err(EINVAL, "xattr name is only a namespace prefix");
    return Ok();
  }
  return Err(EOPNOTSUPP, "xattr namespace not supported");
}

format::Timespec Now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return format::Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0};
}

}  // namespace

Result<extent::XattrRun> FileSystem::XattrsOf(uint64_t ino, const Inode& in) const {
  auto run = extent::ReadXattrRun(*region_, sb_, ino, in.xattr_block);
  if (!run.ok()) ReportDamage(ino, run.error().Message());
  return run;
}

Status FileSystem::StageXattrsLocked(Tx& tx, Node& node, Inode& in, const extent::XattrRun& old,
                                     const XattrList& list) {
  const uint64_t ino = node.ino;
  node.has_capability_xattr = -1;  // learnt again on the next write
  uint64_t blocks = extent::XattrRunBlocks(list);
  if (blocks > format::kMaxXattrBlocks) return Err(ENOSPC, "no room for the xattr: 256 KiB of xattrs per inode");
  uint64_t new_off = 0;
  if (blocks > 0) {
    auto reserved = alloc_.Reserve(blocks, extent::InodeOff(sb_, ino) / kBlockSize, 1, true);
    // What this transaction logs besides the run: the inode and a few bitmap words.
    constexpr uint64_t kLogSlack = 1024;
    if (!reserved.ok() && reserved.code() == ENOSPC && in.xattr_block && blocks <= old.nblocks &&
        tx.log_bytes() + sizeof(format::JournalRecord) + blocks * kBlockSize + kLogSlack <= journal_.capacity()) {
      // No room for a new run, but the list does not grow (removexattr, a smaller value):
      // such a change must not fail for lack of space, as on other filesystems. The new run
      // goes over the old one's first blocks through the journal (crash atomic like the
      // rest of the transaction) and the old run's tail is freed.
      std::vector<uint8_t> bytes = extent::SerializeXattrRun(list, ino, static_cast<uint32_t>(blocks));
      tx.Write(in.xattr_block, bytes.data(), static_cast<uint32_t>(bytes.size()));
      if (blocks < old.nblocks)
        alloc_.StageFree(tx, extent::Run{in.xattr_block / kBlockSize + blocks, old.nblocks - blocks});
      in.blocks = in.blocks - old.nblocks + blocks;
      return Ok();
    }
    PMEMFS_ASSIGN_OR_RETURN(extent::Run r, std::move(reserved));
    alloc_.StageUse(tx, r);
    new_off = format::BlockOff(r.start);
    std::vector<uint8_t> bytes = extent::SerializeXattrRun(list, ino, static_cast<uint32_t>(blocks));
    region_->CopyFlush(new_off, bytes.data(), bytes.size());
  }
  if (in.xattr_block) alloc_.StageFree(tx, extent::Run{in.xattr_block / kBlockSize, old.nblocks});
  in.blocks = in.blocks - old.nblocks + blocks;
  in.xattr_block = new_off;
  return Ok();
}

Status FileSystem::SetXattr(const Ctx& ctx, uint64_t ino, std::string_view name, std::string_view value,
                            int flags) {
  if (IsVirtualXattr(name)) return SetVirtualXattr(ctx, ino, name, value, flags);
  PMEMFS_TRY(ValidXattrName(name));
  if (value.size() > extent::kXattrValueMax) return Err(E2BIG, "xattr value too large");
  NodeRef n = GetNode(ino);
  std::unique_lock lk(n->mu);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(extent::XattrRun old, XattrsOf(ino, in));
  XattrList list = old.list;
  auto it = std::find_if(list.begin(), list.end(), [&](auto& kv) { return kv.first == name; });
  // Both flags together are allowed (the VFS checks only for unknown ones): EEXIST or ENODATA,
  // as on ext4 and tmpfs.
  if (it != list.end() && (flags & XATTR_CREATE)) return Err(EEXIST, "xattr exists");
  if (it == list.end() && (flags & XATTR_REPLACE)) return Err(ENODATA, "no such xattr");
  if (it != list.end()) it->second = std::string(value);
  else list.emplace_back(std::string(name), std::string(value));
  Tx tx(*region_);
  DropCaches(tx, *n);
  PMEMFS_TRY(StageXattrsLocked(tx, *n, in, old, list));
  in.ctime = Now();
  PutInode(tx, ino, in);
  return Commit(tx);
}

Result<std::string> FileSystem::GetXattr(uint64_t ino, std::string_view name) {
  if (IsVirtualXattr(name)) return GetVirtualXattr(ino, name);
  PMEMFS_TRY(ValidXattrName(name));
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(extent::XattrRun run, XattrsOf(ino, in));
  for (auto& [k, v] : run.list)
    if (k == name) return v;
  return Err(ENODATA, "no such xattr");
}

Result<std::vector<std::string>> FileSystem::ListXattr(uint64_t ino, const Ctx& ctx) {
  NodeRef n = GetNode(ino);
  std::shared_lock lk(n->mu);
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  PMEMFS_ASSIGN_OR_RETURN(extent::XattrRun run, XattrsOf(ino, in));
  std::vector<std::string> names;
  int trusted = -1;  // whether the caller may see trusted.*: asked once, and only if needed
  for (auto& [k, v] : run.list) {
    if (k.starts_with("trusted.")) {
      if (trusted < 0) trusted = ctx.Has(CAP_SYS_ADMIN) ? 1 : 0;
      if (!trusted) continue;
    }
    names.push_back(k);
  }
  return names;
}

Status FileSystem::RemoveXattr(const Ctx& ctx, uint64_t ino, std::string_view name) {
  if (IsVirtualXattr(name)) return RemoveVirtualXattr(ctx, ino, name);
  PMEMFS_TRY(ValidXattrName(name));
  NodeRef n = GetNode(ino);
  std::unique_lock lk(n->mu);
  PMEMFS_TRY(Writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode in, LoadInode(ino));
  Tx tx(*region_);
  DropCaches(tx, *n);
  PMEMFS_ASSIGN_OR_RETURN(bool dropped, StageDropXattrLocked(tx, *n, in, name));
  if (!dropped) return Err(ENODATA, "no such xattr");
  in.ctime = Now();
  PutInode(tx, ino, in);
  return Commit(tx);
}

Result<bool> FileSystem::StageDropXattrLocked(Tx& tx, Node& n, Inode& in, std::string_view name) {
  if (!in.xattr_block) return false;
  PMEMFS_ASSIGN_OR_RETURN(extent::XattrRun old, XattrsOf(n.ino, in));
  XattrList list = old.list;
  auto it = std::find_if(list.begin(), list.end(), [&](auto& kv) { return kv.first == name; });
  if (it == list.end()) return false;
  list.erase(it);
  PMEMFS_TRY(StageXattrsLocked(tx, n, in, old, list));
  return true;
}

Status FileSystem::StageFreeXattrsLocked(Tx& tx, Node& n, Inode& in) {
  if (!in.xattr_block) return Ok();
  PMEMFS_ASSIGN_OR_RETURN(extent::XattrRun old, XattrsOf(n.ino, in));
  return StageXattrsLocked(tx, n, in, old, {});
}

}  // namespace pmemfs::fs
