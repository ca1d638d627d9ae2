// SPDX-License-Identifier: BSD-3-Clause
// FileSystem: pmemfs's operations over a mounted region, independent of FUSE (the adapter
// in fuse_ops.cc translates requests to these calls), so the layer is testable without a
// mount. Every metadata change is one or more journal transactions (Commit); data written
// by Write is durable when Write returns.
//
// Concurrency. Every inode in use has a Node (node.h) whose lock `mu` each operation
// takes, shared to read and exclusive to change; operations on different inodes run in
// parallel, and so do reads of one inode. The journal serialises only commits, and groups
// the transactions committed at once. One lock order, outermost first:
//   1. rename_mu_            a rename between two directories (keeps ancestry still)
//   2. Node::mu              a directory before its entries' inodes; the two directories
//                            of a rename ancestor first, unrelated ones by inode number;
//                            the entries' inodes of one operation by inode number
//   3. orphan_mu_            the orphan list (the state block's head and the orphan links
//                            of any inode), from staging through the commit
//   4. journal, allocator, inode bitmap (internally locked)
//   5. table_mu_, error_mu_  leaves: nothing else is taken while they are held
// Nothing waits for a lock up the tree while holding one below it: ".." is resolved by
// releasing the child first. Functions ending in Locked document which locks they need.
// Metadata structures shared between inodes change only through what the journal merges
// (bitmap bit operations) or under orphan_mu_ (orphan links, which the inode checksum
// leaves out for that reason, as it leaves out mtime and ctime, stored in place by
// journal-free writes).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/result.h"
#include "extent/allocator.h"
#include "extent/extent_map.h"
#include "extent/format.h"
#include "extent/journal.h"
#include "extent/xattr_run.h"
#include "fs/directory.h"
#include "fs/node.h"
#include "pmem/region.h"

namespace pmemfs::fs {

struct MountOptions {
  bool read_only = false;
  bool user_immutable = false;  // owners may set/clear the immutable-extents flag
};

// The caller of an operation, from the FUSE request: its filesystem uid and gid, and its
// pid to ask the rest of its credentials about (fs/credentials.h).
struct Ctx {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  // Asks whether the caller holds a capability in the mount's user namespace
  // (CAP_LINUX_IMMUTABLE to change the flag, CAP_FSETID to keep set-user-ID/set-group-ID
  // on a write); consulted only when needed, since it reads /proc. Null: privileged (the
  // daemon itself, tests).
  bool (*has_capability)(uint32_t pid, int cap) = nullptr;
  // Asks whether `gid` is one of the caller's supplementary groups. Null: none.
  bool (*in_group)(uint32_t pid, uint32_t gid) = nullptr;
  bool Has(int cap) const { return !has_capability || has_capability(pid, cap); }
  // in_group_p(): the filesystem gid or a supplementary group.
  bool InGroup(uint32_t g) const { return g == gid || (in_group && in_group(pid, g)); }
};

struct Entry {
  uint64_t ino = 0;
  uint64_t generation = 0;
  struct stat attr {};
};

// setattr: which fields to change.
enum SetAttrMask : uint32_t {
  kSetMode = 1, kSetUid = 2, kSetGid = 4, kSetSize = 8,
  kSetAtime = 16, kSetMtime = 32, kSetAtimeNow = 64, kSetMtimeNow = 128, kSetCtime = 256,
};
struct SetAttrIn {
  uint32_t mask = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  timespec atime{}, mtime{}, ctime{};
};

struct StatFs {
  uint64_t block_size, blocks, bfree, files, ffree, namelen;
};

inline constexpr uint64_t kMaxFileSize = uint64_t{1} << 50;  // 1 PiB

class FileSystem {
 public:
  // Reads the superblock (falling back to the backup), replays the journal, loads the
  // allocators and processes the orphan list. ENODATA when the region holds no pmemfs.
  static Result<std::unique_ptr<FileSystem>> Mount(std::unique_ptr<pmem::Region> region, MountOptions opts);
  // The same over a region the caller keeps (fsck repairs, tests). REQUIRES: it outlives the result.
  static Result<std::unique_ptr<FileSystem>> Mount(pmem::Region& region, MountOptions opts);
  ~FileSystem();

  const format::Superblock& superblock() const { return sb_; }
  pmem::Region& region() { return *region_; }
  bool read_only() const { return read_only_; }
  // Set when a commit failed or corruption was found: the filesystem refuses changes.
  std::string error_state() const;
  // Pre-faults the region mapping for the metadata and every block in use, in a background
  // thread, so that no request pays a first-touch page fault there. The destructor stops
  // it. For the daemon (tests and tools do not start it).
  void StartPrefault();

  // Stops the filesystem after an error found outside a commit (a region fault: SIGBUS on
  // the mapping, a reply the kernel could not copy from it): it turns read-only, as after a
  // failed commit, and `reason` is logged once, with the first stop. Thread-safe.
  void Stop(const std::string& reason);

  // ---- namespace ------------------------------------------------------------------------
  // Operations returning an Entry count one kernel reference (nlookup) on success.
  Result<Entry> Lookup(uint64_t parent, std::string_view name);
  void Forget(uint64_t ino, uint64_t nlookup);
  Result<struct stat> GetAttr(uint64_t ino);
  Result<struct stat> SetAttr(const Ctx& ctx, uint64_t ino, const SetAttrIn& in);
  Result<Entry> Mknod(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev);
  Result<Entry> Mkdir(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode);
  Result<Entry> Symlink(const Ctx& ctx, uint64_t parent, std::string_view name, std::string_view target);
  Result<Entry> Link(uint64_t ino, uint64_t newparent, std::string_view newname);
  Status Unlink(uint64_t parent, std::string_view name);
  Status Rmdir(uint64_t parent, std::string_view name);
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (the source name is left
  // naming a new whiteout, a 0/0 character device owned by `ctx`, in the same transaction).
  Status Rename(uint64_t parent, std::string_view name, uint64_t newparent, std::string_view newname,
                uint32_t flags, const Ctx& ctx = {});
  Result<std::string> Readlink(uint64_t ino);

  // ---- files ------------------------------------------------------------------------------
  Status Open(uint64_t ino, int flags);  // counts an open handle
  void Release(uint64_t ino);
  // Calls `sink` with the byte ranges that make up [off, off+size) clipped to EOF: pointers
  // into the region, or nullptr for zeros. The inode's lock is held shared across `sink`,
  // so the region bytes cannot be freed while the sink (the FUSE reply) reads them.
  struct Piece {
    const void* data;  // nullptr: zeros
    size_t len;
  };
  Status Read(uint64_t ino, uint64_t off, uint64_t size, const std::function<void(const std::vector<Piece>&)>& sink);
  // Writes at `off` (for O_APPEND the kernel passes the size it holds, which is ours).
  Result<size_t> Write(uint64_t ino, uint64_t off, const void* data, size_t len, const Ctx& ctx = {});
  // Nothing to do: data, sizes, times and every other change are durable when the call
  // that made them returns. (The FUSE adapter answers ENOSYS, so that the kernel stops
  // asking: fsync and fdatasync then cost no round trip.)
  Status Fsync(uint64_t ino);
  Status Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const Ctx& ctx = {});
  Result<uint64_t> Lseek(uint64_t ino, uint64_t off, int whence);
  Result<size_t> CopyFileRange(uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out, size_t len,
                               const Ctx& ctx = {});

  // ---- directories --------------------------------------------------------------------------
  // Calls `emit(name, entry, next_cookie)` for the entries from `cookie` on until it
  // returns false. `.` and `..` come first. Without `plus`, an entry's attr carries only
  // st_ino and the type bits of st_mode; with `plus`, the whole inode's attributes and its
  // generation (the kernel takes an entry whose generation differs from the one LOOKUP gave
  // for a reused inode number and marks its inode bad), and each emitted entry except .
  // and .. counts one kernel reference; `emit` returns false for an entry it could not take.
  using DirEmit = std::function<bool(std::string_view name, const Entry& entry, uint64_t next_cookie)>;
  Status ReadDir(uint64_t ino, uint64_t cookie, bool plus, const DirEmit& emit);

  // ---- extended attributes -------------------------------------------------------------------
  Status SetXattr(const Ctx& ctx, uint64_t ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> GetXattr(uint64_t ino, std::string_view name);
  // trusted.* names are listed only to a caller with CAP_SYS_ADMIN, as ext4 and tmpfs do
  // (the VFS hides them from getxattr by itself, but listxattr is the filesystem's).
  Result<std::vector<std::string>> ListXattr(uint64_t ino, const Ctx& ctx = {});
  Status RemoveXattr(const Ctx& ctx, uint64_t ino, std::string_view name);

  StatFs Statfs();

  // fsck repair: links an inode that no directory references into /lost+found as "#INO"
  // (creating /lost+found when missing), and gives it a correct link count.
  Status Reattach(uint64_t ino);

  // ---- direct mapping (src/common/lease_protocol.h) ---------------------------------------
  struct LeaseExtent {
    uint64_t file_off, region_off, len;  // bytes
  };
  struct LeaseInfo {
    uint64_t file_size = 0;
    uint64_t align = 0;
    bool writable = false;  // the lease allows writing (else read-only)
    std::vector<LeaseExtent> extents;
  };
  // The file's map for a direct mapping by the caller of `ctx`, whose descriptor allows
  // writing when `want_write`. With `take`, counts a lease: until DropLease the map cannot
  // change (clearing the flag answers EBUSY). EINVAL without immutable extents; EACCES when
  // the caller could not open the region for reading itself (RegionAccess). The lease is
  // writable only when `want_write`, the filesystem is writable and the caller could open
  // the region for writing.
  Result<LeaseInfo> Lease(const Ctx& ctx, uint64_t ino, bool take, bool want_write);
  // The same for a privileged caller with a read-write descriptor (tests, tools).
  Result<LeaseInfo> Lease(uint64_t ino, bool take) { return Lease(Ctx{}, ino, take, true); }
  void DropLease(uint64_t ino);
  bool HasImmutableExtents(uint64_t ino);
  // What a write through the mount does to the inode, for bytes a client wrote into its
  // direct mapping (PMEMFS_IOC_TOUCH): mtime = ctime = now, set-id bits and
  // security.capability dropped as KillPrivsLocked decides for `ctx`; one transaction.
  // EINVAL without immutable extents; EROFS when the filesystem is not writable.
  Status Touch(const Ctx& ctx, uint64_t ino);

  // Called, after the commit, when an operation changed attributes the kernel caches but
  // does not expect to change (a write clearing set-user-ID): the FUSE adapter invalidates
  // the kernel's copy. Set before serving; called with the inode's lock held.
  void SetAttrChangedHook(std::function<void(uint64_t ino)> fn) { attr_changed_ = std::move(fn); }

 private:
  using NodeRef = std::shared_ptr<Node>;

  FileSystem(std::unique_ptr<pmem::Region> owned, pmem::Region& region, const format::Superblock& sb,
             MountOptions opts);
  static Result<std::unique_ptr<FileSystem>> MountImpl(std::unique_ptr<pmem::Region> owned, pmem::Region& region,
                                                       MountOptions opts);
  Status Recover();

  // Nodes. The node of `ino`, created when absent (table_mu_).
  NodeRef GetNode(uint64_t ino);
  // Forgets the node of a linked inode nobody references any more. REQUIRES table_mu_.
  void DropNodeIfUnusedLocked(uint64_t ino);

  // Inodes. REQUIRES the inode's node locked (shared suffices to load). Both give the
  // inode as its next journaled change writes it (FoldDataTime), without its orphan links
  // (zero here; OrphanLink reads them, under the orphan list's lock).
  Result<format::Inode> LoadInode(uint64_t ino) const;                // validated
  format::Inode TxInode(extent::Tx& tx, uint64_t ino) const;           // staged view
  // Seals and stages `in`, all but its orphan links (the orphan list's: StageOrphanLinks).
  void PutInode(extent::Tx& tx, uint64_t ino, format::Inode& in);
  void StageOrphanLinks(extent::Tx& tx, uint64_t ino, uint64_t next, uint64_t prev);  // REQUIRES orphan_mu_
  enum OrphanLinkKind { kNextOrphan, kPrevOrphan };
  uint64_t OrphanLink(extent::Tx& tx, uint64_t ino, OrphanLinkKind which) const;      // REQUIRES orphan_mu_
  // PutInode for an inode taking a free slot: its orphan links are cleared too.
  void PutNewInode(extent::Tx& tx, uint64_t ino, format::Inode& in);
  struct stat ToStat(uint64_t ino, const format::Inode& in) const;
  Entry MakeEntry(Node& n, const format::Inode& in);                  // counts a kernel reference
  // The node's indexes, loaded on first use. REQUIRES n.mu (shared suffices). Extents is
  // EUCLEAN when the map is damaged, or claims blocks the daemon knows to be owned
  // otherwise (ClaimBlocks).
  Result<extent::ExtentMap*> Extents(Node& n, const format::Inode& in);
  Result<DirIndex*> Dir(Node& n, const format::Inode& in);
  void DropCaches(extent::Tx& tx, Node& n);  // on abort the indexes reload. REQUIRES n.mu exclusive
  // A map being loaded must own its blocks alone: every block it names (extents, extent
  // blocks, xattr run) is marked in use in the block bitmap and in no run of owned_ that
  // another inode still owns. Records its runs in owned_. REQUIRES n.mu and n.load_mu.
  Status ClaimBlocks(uint64_t ino, const format::Inode& in, const extent::ExtentMap& map);
  void ForEachOwnedRun(const format::Inode& in, const extent::ExtentMap& map,
                       const std::function<void(uint64_t start, uint64_t len)>& fn) const;

  // Logs damage found in inode `ino`'s structures, once per inode.
  void ReportDamage(uint64_t ino, const std::string& what) const;
  // Commits `tx`; on failure the filesystem turns read-only (sticky error).
  Status Commit(extent::Tx& tx);
  Status Writable() const;

  // Namespace helpers (namei.cc). REQUIRES the directory's node exclusive (and the
  // inodes' named).
  Result<Entry> CreateLocked(const Ctx& ctx, Node& parent, std::string_view name, uint32_t mode, uint64_t rdev,
                             std::string_view symlink_target);
  Status AddEntryLocked(extent::Tx& tx, Node& dir, std::string_view name, uint64_t ino, uint32_t mode);
  // Drops one link of `ino`; the last puts it on the orphan list, which needs `orphans`
  // (orphan_mu_), taken here when not yet held.
  void DropLinkLocked(extent::Tx& tx, uint64_t ino, std::unique_lock<std::mutex>& orphans);
  void OrphanAddLocked(extent::Tx& tx, uint64_t ino, format::Inode& in);     // REQUIRES orphan_mu_
  void OrphanRemoveLocked(extent::Tx& tx, uint64_t ino, format::Inode& in);  // REQUIRES orphan_mu_
  // Frees an unlinked inode whose last reference went. Takes its node exclusively itself.
  void MaybeFree(uint64_t ino);
  Status FreeInodeLocked(Node& n);  // REQUIRES n.mu exclusive
  // `dir` and every directory above it up to the root. REQUIRES rename_mu_ (ancestry stays
  // still) and no node lock held: locks each directory on the way, one at a time.
  Result<std::vector<uint64_t>> Ancestry(uint64_t dir);

  // Data helpers (file_io.cc). REQUIRES n.mu exclusive.
  Status TruncateBlocksLocked(Node& n, uint64_t from_lblk);  // batched transactions
  // Sets the size and, in the same transaction, whatever `also` changes (setattr's other
  // attributes); a shrink then releases the blocks past EOF in later transactions.
  Status SetSizeLocked(Node& n, uint64_t size, const std::function<Status(extent::Tx&, format::Inode&)>& also = {});
  // Makes the bytes past EOF safe to expose before the size grows over them: written blocks
  // left past EOF by an interrupted truncate are released, and the tail of the EOF block
  // from EOF up to `upto` (at most the block's end) is zeroed. Changes nothing visible.
  Status ClearPastEofLocked(Node& n, uint64_t upto);
  Result<size_t> WriteLocked(const Ctx& ctx, Node& n, uint64_t off, const void* data, size_t len);
  // The write of [off, off+len) when it only overwrites written blocks inside EOF and
  // clears no privilege: the data and the new times are stored in place, without a
  // transaction. False when the write needs the general path.
  Result<bool> OverwriteInPlaceLocked(Node& n, format::Inode& in, uint64_t off, const void* data, size_t len);
  // One write transaction over [off, off+len) of `in` (loaded, EOF already made safe):
  // allocates, stores the data, commits. ENOSPC changes nothing.
  Result<size_t> WriteRangeLocked(const Ctx& ctx, Node& n, format::Inode in, uint64_t off, const void* data,
                                  size_t len);
  // What the kernel's file_remove_privs and chown do, which it leaves to this daemon
  // (FUSE_HANDLE_KILLPRIV_V2, see fuse_ops.cc), staged in `tx` with the change itself:
  //   data or size of a regular file, by a caller without CAP_FSETID: clear set-user-ID,
  //     and set-group-ID when the group may execute or the caller is not in the group;
  //   chown of any non-directory: clear set-user-ID, and set-group-ID when the group may
  //     execute or the caller is neither in the group nor holds CAP_FSETID;
  //   both remove security.capability (regular files).
  Status KillPrivsLocked(const Ctx& ctx, extent::Tx& tx, Node& n, format::Inode& in, bool chown);
  // Xattrs (xattr.cc). The validated run of `in` (EUCLEAN, logged, when damaged).
  Result<extent::XattrRun> XattrsOf(uint64_t ino, const format::Inode& in) const;
  // Replaces the run `old` of `in` by one holding `list` (none when empty): the new run is
  // written now, into blocks this transaction allocates; `in` is updated, not staged.
  Status StageXattrsLocked(extent::Tx& tx, Node& n, format::Inode& in, const extent::XattrRun& old,
                           const extent::XattrList& list);
  // Stages the removal of xattr `name`; false when the inode has none of that name.
  Result<bool> StageDropXattrLocked(extent::Tx& tx, Node& n, format::Inode& in, std::string_view name);
  // Stages the release of every xattr of `in` (the inode is being freed).
  Status StageFreeXattrsLocked(extent::Tx& tx, Node& n, format::Inode& in);
  Status AllocateLocked(extent::Tx& tx, format::Inode& in, extent::ExtentMap& map, uint64_t lblk,
                        uint64_t nblocks, bool unwritten, uint64_t align);

  // Immutable extents (immutable.cc). REQUIRES n.mu exclusive.
  // EPERM (logged once per file) when `in` carries the flag: `op` would change its map.
  Status CheckImmutableChangeLocked(uint64_t ino, const format::Inode& in, const char* op);
  Status SetVirtualXattr(const Ctx& ctx, uint64_t ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> GetVirtualXattr(uint64_t ino, std::string_view name);
  Status RemoveVirtualXattr(const Ctx& ctx, uint64_t ino, std::string_view name);
  Status SetImmutableLocked(const Ctx& ctx, Node& n, uint64_t align);
  Status ClearImmutableLocked(const Ctx& ctx, Node& n);
  Status PrepareUnitLocked(Node& n, uint64_t unit, uint64_t align_blocks);

  std::unique_ptr<pmem::Region> owned_region_;  // null when the caller keeps the region
  pmem::Region* const region_;
  const format::Superblock sb_;
  const MountOptions opts_;
  bool read_only_;
  extent::Journal journal_;
  extent::BlockAllocator alloc_;
  extent::InodeBitmap ibitmap_;

  std::mutex rename_mu_;
  std::mutex orphan_mu_;
  std::mutex table_mu_;
  std::unordered_map<uint64_t, NodeRef> nodes_;  // GUARDED_BY(table_mu_)
  // Block runs owned by the maps loaded so far: start -> (end, inode). Added when a map is
  // loaded; an entry whose inode no longer maps it is dropped when met; rebuilt from the
  // loaded maps whenever it has doubled. A guard against crafted images, not a proof:
  // blocks a loaded map allocates later are not in it until the next rebuild, and an
  // owner busy with a change at that moment is not asked (fsck is the full check).
  // owned_mu_ is a leaf lock.
  std::mutex owned_mu_;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> owned_;  // GUARDED_BY(owned_mu_)
  size_t owned_rebuild_at_ = 4096;                           // GUARDED_BY(owned_mu_)
  mutable std::mutex error_mu_;
  std::string error_;                  // sticky; GUARDED_BY(error_mu_)
  std::unordered_map<uint64_t, uint32_t> refusals_logged_;  // ino -> generation; GUARDED_BY(error_mu_)
  // Damage logged once per inode and kind (0: a directory entry naming no usable inode,
  // 1: an extent map overlapping blocks owned elsewhere, 2: anything ReportDamage says).
  // True the first time.
  bool LogDamageOnce(uint64_t ino, int kind) const;
  mutable std::unordered_set<uint64_t> damage_logged_;  // ino * 4 + kind; GUARDED_BY(error_mu_)
  std::function<void(uint64_t)> attr_changed_;
  std::atomic<bool> stop_prefault_{false};
  std::thread prefault_;
};

// DT_* type of a mode.
inline uint8_t ModeType(uint32_t mode) { return static_cast<uint8_t>((mode & S_IFMT) >> 12); }

}  // namespace pmemfs::fs
