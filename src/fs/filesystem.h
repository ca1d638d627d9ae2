// FileSystem: pmemfs's operations over a mounted region, independent of FUSE (the adapter
// in fuse_ops.cc translates requests to these calls), so the layer is testable without a
// mount. Every metadata change is one or more journal transactions (Commit); data written
// by Write is durable when Write returns.
//
// Locking. One documented order: mu_ -> cache_mu_ -> allocator -> inode bitmap.
//   mu_ (shared_mutex): shared for operations that only read (lookup, getattr, read,
//       readdir, getxattr, lseek), exclusive for every change. A journal commit happens
//       only under the exclusive lock, so the journal holds one transaction at a time.
//   cache_mu_: the table of per-inode DRAM state (states_) and lazy loading of extent maps
//       and directory indexes under the shared lock.
// Functions ending in Locked require mu_ held exclusively.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
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
  // into the region, or nullptr for zeros. The shared lock is held across `sink`, so the
  // region bytes cannot be freed while the sink (the FUSE reply) reads them.
  struct Piece {
    const void* data;  // nullptr: zeros
    size_t len;
  };
  Status Read(uint64_t ino, uint64_t off, uint64_t size, const std::function<void(const std::vector<Piece>&)>& sink);
  // Writes at `off` (for O_APPEND the kernel passes the size it holds, which is ours).
  Result<size_t> Write(uint64_t ino, uint64_t off, const void* data, size_t len, const Ctx& ctx = {});
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

  // Called, after the commit, when an operation changed attributes the kernel caches but
  // does not expect to change (a write clearing set-user-ID): the FUSE adapter invalidates
  // the kernel's copy. Set before serving; called with the filesystem lock held.
  void SetAttrChangedHook(std::function<void(uint64_t ino)> fn) { attr_changed_ = std::move(fn); }

 private:
  struct InodeState {
    uint64_t nlookup = 0;      // kernel references (FUSE lookup count)
    uint32_t open_count = 0;   // open handles
    uint32_t leases = 0;       // direct-mapping leases (immutable-extents files only)
    std::optional<extent::ExtentMap> extents;  // loaded lazily
    std::unique_ptr<DirIndex> dir;             // directories, loaded lazily
  };

  FileSystem(std::unique_ptr<pmem::Region> owned, pmem::Region& region, const format::Superblock& sb,
             MountOptions opts);
  static Result<std::unique_ptr<FileSystem>> MountImpl(std::unique_ptr<pmem::Region> owned, pmem::Region& region,
                                                       MountOptions opts);
  Status Recover();

  // Inodes.
  Result<format::Inode> LoadInode(uint64_t ino) const;                // validated
  format::Inode TxInode(extent::Tx& tx, uint64_t ino) const;           // staged view
  void PutInode(extent::Tx& tx, uint64_t ino, format::Inode& in);      // seals and stages
  struct stat ToStat(uint64_t ino, const format::Inode& in) const;
  Entry MakeEntryLocked(uint64_t ino, const format::Inode& in);       // counts a reference
  InodeState& StateLocked(uint64_t ino);                              // REQUIRES cache_mu_
  // Loads (once) and returns the inode's extent map. EUCLEAN when it is damaged, or when it
  // claims blocks the daemon knows to be owned otherwise (ClaimBlocksLocked).
  Result<extent::ExtentMap*> Extents(uint64_t ino, const format::Inode& in);
  // A map being loaded must own its blocks alone: every block it names (extents, extent
  // blocks, xattr block) is marked in use in the block bitmap and in no run of owned_ that
  // another inode still owns. Records its runs in owned_. REQUIRES cache_mu_.
  Status ClaimBlocksLocked(uint64_t ino, const format::Inode& in, const extent::ExtentMap& map);
  void ForEachOwnedRun(const format::Inode& in, const extent::ExtentMap& map,
                       const std::function<void(uint64_t start, uint64_t len)>& fn) const;
  Result<DirIndex*> Dir(uint64_t ino, const format::Inode& in);
  void DropCaches(extent::Tx& tx, uint64_t ino);  // on abort: the DRAM views reload

  // Logs damage found in inode `ino`'s structures, once per inode.
  void ReportDamage(uint64_t ino, const std::string& what) const;
  // Commits `tx`; on failure the filesystem turns read-only (sticky error).
  Status Commit(extent::Tx& tx);
  Status Writable() const;

  // Namespace helpers (namei.cc).
  Result<Entry> CreateLocked(const Ctx& ctx, uint64_t parent, std::string_view name, uint32_t mode,
                             uint64_t rdev, std::string_view symlink_target);
  Status AddEntryLocked(extent::Tx& tx, uint64_t dir, format::Inode& dir_inode, std::string_view name,
                        uint64_t ino, uint32_t mode);
  void DropLinkLocked(extent::Tx& tx, uint64_t ino, format::Inode& in);
  void OrphanAddLocked(extent::Tx& tx, uint64_t ino, format::Inode& in);
  void OrphanRemoveLocked(extent::Tx& tx, uint64_t ino, format::Inode& in);
  Status MaybeFreeLocked(uint64_t ino);
  Status FreeInodeLocked(uint64_t ino);
  Result<bool> IsAncestorLocked(uint64_t ancestor, uint64_t dir);

  // Data helpers (file_io.cc).
  Status TruncateBlocksLocked(uint64_t ino, uint64_t from_lblk);      // batched transactions
  // Sets the size and, in the same transaction, whatever `also` changes (setattr's other
  // attributes); a shrink then releases the blocks past EOF in later transactions.
  Status SetSizeLocked(uint64_t ino, uint64_t size,
                       const std::function<Status(extent::Tx&, format::Inode&)>& also = {});
  // Makes the bytes past EOF safe to expose before the size grows over them: written blocks
  // left past EOF by an interrupted truncate are released, and the tail of the EOF block
  // from EOF up to `upto` (at most the block's end) is zeroed. Changes nothing visible.
  Status ClearPastEofLocked(uint64_t ino, uint64_t upto);
  Result<size_t> WriteLocked(const Ctx& ctx, uint64_t ino, uint64_t off, const void* data, size_t len);
  // One write transaction over [off, off+len) of `in` (loaded, EOF already made safe):
  // allocates, stores the data, commits. ENOSPC changes nothing.
  Result<size_t> WriteRangeLocked(const Ctx& ctx, uint64_t ino, format::Inode in, extent::ExtentMap& map,
                                  uint64_t off, const void* data, size_t len);
  // What the kernel's file_remove_privs and chown do, which it leaves to this daemon
  // (FUSE_HANDLE_KILLPRIV_V2, see fuse_ops.cc), staged in `tx` with the change itself:
  //   data or size of a regular file, by a caller without CAP_FSETID: clear set-user-ID,
  //     and set-group-ID when the group may execute or the caller is not in the group;
  //   chown of any non-directory: clear set-user-ID, and set-group-ID when the group may
  //     execute or the caller is neither in the group nor holds CAP_FSETID;
  //   both remove security.capability (regular files).
  Status KillPrivsLocked(const Ctx& ctx, extent::Tx& tx, uint64_t ino, format::Inode& in, bool chown);
  // Xattrs (xattr.cc). The validated run of `in` (EUCLEAN, logged, when damaged).
  Result<extent::XattrRun> XattrsOf(uint64_t ino, const format::Inode& in) const;
  // Replaces the run `old` of `in` by one holding `list` (none when empty): the new run is
  // written now, into blocks this transaction allocates; `in` is updated, not staged.
  Status StageXattrsLocked(extent::Tx& tx, uint64_t ino, format::Inode& in, const extent::XattrRun& old,
                           const extent::XattrList& list);
  // Stages the removal of xattr `name`; false when the inode has none of that name.
  Result<bool> StageDropXattrLocked(extent::Tx& tx, uint64_t ino, format::Inode& in, std::string_view name);
  // Stages the release of every xattr of `in` (the inode is being freed).
  Status StageFreeXattrsLocked(extent::Tx& tx, uint64_t ino, format::Inode& in);
  Status ZeroRangeLocked(extent::Tx& tx, uint64_t ino, format::Inode& in, extent::ExtentMap& map,
                         uint64_t off, uint64_t len);
  Status AllocateLocked(extent::Tx& tx, uint64_t ino, format::Inode& in, extent::ExtentMap& map,
                        uint64_t lblk, uint64_t nblocks, bool unwritten, uint64_t align);

  // Immutable extents (immutable.cc).
  // EPERM (logged once per file) when `in` carries the flag: `op` would change its map.
  Status CheckImmutableChangeLocked(uint64_t ino, const format::Inode& in, const char* op);
  Status SetVirtualXattr(const Ctx& ctx, uint64_t ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> GetVirtualXattr(uint64_t ino, std::string_view name);
  Status RemoveVirtualXattr(const Ctx& ctx, uint64_t ino, std::string_view name);
  Status SetImmutableLocked(const Ctx& ctx, uint64_t ino, uint64_t align);
  Status ClearImmutableLocked(const Ctx& ctx, uint64_t ino);
  Status PrepareUnitLocked(uint64_t ino, uint64_t unit, uint64_t align_blocks);

  std::unique_ptr<pmem::Region> owned_region_;  // null when the caller keeps the region
  pmem::Region* const region_;
  const format::Superblock sb_;
  const MountOptions opts_;
  bool read_only_;
  extent::Journal journal_;            // GUARDED_BY(mu_ exclusive)
  extent::BlockAllocator alloc_;
  extent::InodeBitmap ibitmap_;

  mutable std::shared_mutex mu_;
  std::mutex cache_mu_;
  std::unordered_map<uint64_t, std::unique_ptr<InodeState>> states_;  // GUARDED_BY(cache_mu_)
  // Block runs owned by the maps loaded so far: start -> (end, inode). Added when a map is
  // loaded; an entry whose inode no longer maps it is dropped when met; rebuilt from the
  // loaded maps whenever it has doubled. A guard against crafted images, not a proof:
  // blocks a loaded map allocates later are not in it until the next rebuild (fsck is the
  // full check). GUARDED_BY(cache_mu_)
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> owned_;
  size_t owned_rebuild_at_ = 4096;  // GUARDED_BY(cache_mu_)
  mutable std::mutex error_mu_;
  std::string error_;                  // sticky; GUARDED_BY(error_mu_)
  std::unordered_map<uint64_t, uint32_t> refusals_logged_;  // ino -> generation; GUARDED_BY(error_mu_)
  // Damage logged once per inode and kind (0: a directory entry naming no usable inode,
  // 1: an extent map overlapping blocks owned elsewhere, 2: anything ReportDamage says).
  // True the first time.
  bool LogDamageOnce(uint64_t ino, int kind) const;
  mutable std::unordered_set<uint64_t> damage_logged_;  // ino * 4 + kind; GUARDED_BY(error_mu_)
  std::function<void(uint64_t)> attr_changed_;
};

// DT_* type of a mode.
inline uint8_t ModeType(uint32_t mode) { return static_cast<uint8_t>((mode & S_IFMT) >> 12); }

}  // namespace pmemfs::fs
