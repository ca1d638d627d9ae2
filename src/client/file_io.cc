// SPDX-License-Identifier: BSD-3-Clause
// libpmemfs: read and write of flagged files in userspace (pmemfs_pread & co, and the
// LD_PRELOAD shim's read/write family through file_io.h).
//
// Each descriptor number has one table entry: unknown, fresh (made by a call of this
// process that file_io.h saw, since the last fork), not served (the system call), busy
// (being examined), or a Desc: the mapping of its file, leased on the descriptor's own
// open file description, and what the description allows. An entry is examined at the
// descriptor's first read or write and kept until the number is closed, duplicated onto,
// or handed out again (file_io.h's bookkeeping); every answer the kernel or the daemon must
// give (errors, EOF extension, O_APPEND) is left to the system call, so that results are
// identical with and without this path. Duplicates this process makes share one Desc.
//
// O_APPEND is the one open-file flag that changes a write's answer, and another process
// sharing the description (fork, inheritance over exec) may set it at any time: a Desc
// that may be shared asks the kernel (F_GETFL, one system call) before each write. Only a
// description opened by this process since its last fork is known to be private.
//
// System calls cost 1.7 us on the development VM (PTI): the served paths make none, except
// read()/write() (one lseek that fetches and advances the offset at once) and msync for a
// region whose store granularity is the page (libpmem2's persist).
//
// Lifetime. A Desc is referenced by each table entry naming it and by each call in flight;
// the last reference unmaps. Descs are never returned to the heap (a free list reuses
// them), so a reader racing with close may try to take a reference on one that was freed:
// TryRef refuses a count of zero, and the entry is read again after the reference is taken.
// Entries carry a generation in their top 16 bits, bumped by every reset, so that an
// examination overtaken by a close or dup2 cannot publish a stale result.
//
// fork: the child inherits the table and the mappings (the descriptors, and so the
// leases, are shared); references held by threads that do not exist in the child are
// recounted from the table (atfork). vfork children share this memory but not the
// descriptor table: entries holding a Desc are left alone by a process other than the
// owner (getpid is asked only then). exec starts from an empty table.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

#include "client/file_io.h"
#include "client/libpmemfs.h"
#include "client/mapping.h"
#include "common/lease_protocol.h"

namespace pmemfs::client::io {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;
constexpr uint64_t kMaxRw = 0x7ffff000;  // MAX_RW_COUNT: the most one read/write moves
constexpr int kIovMax = 1024;            // UIO_MAXIOV
constexpr int kHonouredFlags = RWF_HIPRI | RWF_DSYNC | RWF_SYNC;  // data is durable anyway
constexpr int64_t kTouchIntervalNs = 1000000000;
// The page tables of the mapping are filled this much at a time, at the first copy that
// touches it (Populate).
constexpr uint64_t kPopulateChunk = 2 << 20;
size_t PopulatedWords(uint64_t map_len) { return ((map_len + kPopulateChunk - 1) / kPopulateChunk + 63) / 64; }

// ---- files: the timestamps of what this process wrote ------------------------------------

struct Stamp {
  dev_t dev = 0;
  ino_t ino = 0;
  uint32_t users = 0;                          // Descs naming it; GUARDED_BY(g_stamp_mu)
  std::atomic<int64_t> last_touch{INT64_MIN};  // CLOCK_MONOTONIC_COARSE ns of the last touch
  std::atomic<bool> dirty{false};              // written since the last touch
  std::atomic<int> last_fd{-1};                // a descriptor that wrote (the touch at exit)
};

std::mutex g_stamp_mu;
std::map<std::pair<dev_t, ino_t>, Stamp*> g_stamps;  // GUARDED_BY(g_stamp_mu)

Stamp* GetStamp(dev_t dev, ino_t ino) {
  std::lock_guard lk(g_stamp_mu);
  Stamp*& s = g_stamps[{dev, ino}];
  if (!s) {
    s = new Stamp;
    s->dev = dev;
    s->ino = ino;
  }
  s->users++;
  return s;
}

void ReleaseStamp(Stamp* s) {
  std::lock_guard lk(g_stamp_mu);
  if (--s->users == 0) {
    g_stamps.erase({s->dev, s->ino});
    delete s;
  }
}

int64_t CoarseNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);  // vDSO: no system call
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

// ---- descriptors -----------------------------------------------------------------------

struct Desc {
  std::atomic<uint32_t> refs{0};    // table entries naming it + calls in flight; 0: free
  std::atomic<bool> shared{true};   // the description may be shared with another process
  std::unique_ptr<Mapping> map;
  Stamp* stamp = nullptr;
  bool may_touch = false;           // open O_RDWR with a writable lease: writes in userspace
  std::atomic<bool> writable{false};  // may_touch, until a touch finds the filesystem read-only
  std::atomic<bool> append{false};  // O_APPEND: writes go to the kernel (the daemon's EPERM)
  uint64_t fsize_limit = UINT64_MAX;  // RLIMIT_FSIZE when examined: beyond it, the kernel (SIGXFSZ)
  // One bit per kPopulateChunk of the mapping: its page tables were filled (Populate).
  std::unique_ptr<std::atomic<uint64_t>[]> populated;
  std::mutex pos_mu;                // serialises this process's read/write at the file offset
  Desc* next_free = nullptr;        // GUARDED_BY(g_pool_mu)
};

std::mutex g_pool_mu;
std::vector<Desc*> g_all;    // every Desc ever made (never deleted); GUARDED_BY(g_pool_mu)
Desc* g_free = nullptr;      // GUARDED_BY(g_pool_mu)
std::atomic<pid_t> g_owner{0};  // the process whose descriptors the table describes

Desc* NewDesc() {
  std::lock_guard lk(g_pool_mu);
  if (Desc* d = g_free) {
    g_free = d->next_free;
    return d;
  }
  g_all.push_back(new Desc);
  return g_all.back();
}

void Destroy(Desc* d) {
  int saved = errno;
  d->map.reset();  // unmaps; the lease stays with the description
  d->populated.reset();
  if (d->stamp) ReleaseStamp(d->stamp);
  d->stamp = nullptr;
  errno = saved;
  std::lock_guard lk(g_pool_mu);
  d->next_free = g_free;
  g_free = d;
}

bool TryRef(Desc* d) {
  uint32_t r = d->refs.load(std::memory_order_relaxed);
  do {
    if (r == 0) return false;
  } while (!d->refs.compare_exchange_weak(r, r + 1, std::memory_order_acquire, std::memory_order_relaxed));
  return true;
}

void Unref(Desc* d) {
  if (d->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) Destroy(d);
}

bool InOwner() { return getpid() == g_owner.load(std::memory_order_relaxed); }

// ---- the table ---------------------------------------------------------------------------

using Slot = std::atomic<uint64_t>;
constexpr unsigned kChunkBits = 10;
constexpr unsigned kChunkSize = 1u << kChunkBits;
constexpr unsigned kChunks = 4096;  // descriptors 0 .. 4M-1; larger ones always go to the kernel
constexpr uint64_t kPayloadMask = (uint64_t{1} << 48) - 1;
constexpr uint64_t kGenOne = uint64_t{1} << 48;
constexpr uint64_t kUnknown = 0, kNotServed = 1, kBusy = 2, kFresh = 3;  // otherwise a Desc*

std::atomic<Slot*> g_chunks[kChunks];

uint64_t Gen(uint64_t v) { return v & ~kPayloadMask; }
uint64_t Payload(uint64_t v) { return v & kPayloadMask; }
bool IsDesc(uint64_t payload) { return payload > kFresh; }
bool Unexamined(uint64_t payload) { return payload == kUnknown || payload == kFresh; }
Desc* AsDesc(uint64_t payload) { return reinterpret_cast<Desc*>(payload); }

Slot* SlotOf(int fd, bool create) {
  if (fd < 0 || static_cast<unsigned>(fd) >= kChunks * kChunkSize) return nullptr;
  std::atomic<Slot*>& c = g_chunks[static_cast<unsigned>(fd) >> kChunkBits];
  Slot* chunk = c.load(std::memory_order_acquire);
  if (!chunk && create) {
    Slot* fresh = new (std::nothrow) Slot[kChunkSize]();
    if (!fresh) return nullptr;
    if (c.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) chunk = fresh;
    else delete[] fresh;
  }
  return chunk ? &chunk[static_cast<unsigned>(fd) & (kChunkSize - 1)] : nullptr;
}

// Sets the entry of `fd` to `state` (kUnknown, or kFresh for a descriptor this process
// just made), forgetting what it said (the number names another file, or none); an
// examination in progress will not publish. Left alone when it holds a Desc and this is
// not the owner process (a vfork child).
void Reset(int fd, uint64_t state = kUnknown) {
  Slot* slot = SlotOf(fd, state != kUnknown);
  if (!slot) return;
  uint64_t v = slot->load(std::memory_order_acquire);
  for (;;) {
    if (Payload(v) == state) return;  // nothing known beyond that, nothing being examined
    if (IsDesc(Payload(v)) && !InOwner()) return;
    if (slot->compare_exchange_weak(v, (Gen(v) + kGenOne) | state, std::memory_order_acq_rel)) break;
  }
  if (IsDesc(Payload(v))) Unref(AsDesc(Payload(v)));
}

// Examines `fd`: a Desc (refs 0, unpublished) when this process can serve it, else
// nullptr; *definite is false when the descriptor could not be examined at all (not open),
// which is then not remembered. `fresh`: opened by this process since its last fork.
Desc* Probe(int fd, bool fresh, bool* definite) {
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) {
    *definite = false;
    return nullptr;
  }
  if (sfs.f_type != kFuseSuperMagic) return nullptr;
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0) {
    *definite = false;
    return nullptr;
  }
  // The lease needs a descriptor open for reading (as mmap does).
  if ((fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY) {
    SetError("the descriptor is not open for reading");
    return nullptr;
  }
  // A harmless question first: other FUSE filesystems never see the lease ioctl.
  char flag[32];
  ssize_t n = fgetxattr(fd, "user.pmemfs.immutable_extents", flag, sizeof flag);
  if (n <= 0 || (n == 1 && flag[0] == '0')) {
    SetError(n == 1 ? "the file has no immutable extents" : "not a pmemfs file");
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  // Only an open file the kernel serves without its page cache (opened while flagged):
  // bytes copied here would not be seen by that cache, and what a write through it answers
  // depends on what it holds.
  std::unique_ptr<Mapping> m = MapFile(fd, -1, LeaseHolder::kDescriptor, PMEMFS_LEASE_DIRECT_ONLY);
  if (!m) return nullptr;  // no access to the region, no lease, opened before the flag
  if (reinterpret_cast<uintptr_t>(m.get()) & ~kPayloadMask) return nullptr;  // cannot happen below 2^48
  struct rlimit fsize {};
  Desc* d = NewDesc();
  d->map = std::move(m);
  d->stamp = GetStamp(st.st_dev, st.st_ino);
  // Writes stay with the kernel while an open file somewhere uses the page cache: its
  // direct writes keep that cache coherent (the kernel invalidates what they cover).
  d->may_touch = (fl & O_ACCMODE) == O_RDWR && (d->map->prot & PROT_WRITE) &&
                 !(d->map->access & PMEMFS_LEASE_CACHED_OPENS);
  d->writable.store(d->may_touch, std::memory_order_relaxed);
  d->append.store(fl & O_APPEND, std::memory_order_relaxed);
  d->shared.store(!fresh, std::memory_order_relaxed);
  d->fsize_limit = getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY ? fsize.rlim_cur : UINT64_MAX;
  d->populated.reset(new (std::nothrow) std::atomic<uint64_t>[PopulatedWords(d->map->len)]());
  if (!d->populated) {
    Destroy(d);
    return nullptr;
  }
  if (reinterpret_cast<uintptr_t>(d) & ~kPayloadMask) {  // not representable in an entry
    Destroy(d);
    return nullptr;
  }
  return d;
}

Desc* Classify(int fd) {
  Slot* slot = SlotOf(fd, true);
  if (!slot) return nullptr;
  uint64_t v = slot->load(std::memory_order_acquire);
  if (!Unexamined(Payload(v))) return nullptr;  // decided meanwhile: this call takes the kernel's path
  const uint64_t busy = Gen(v) | kBusy;
  if (!slot->compare_exchange_strong(v, busy, std::memory_order_acq_rel)) return nullptr;
  const int saved = errno;
  bool definite = true;
  Desc* d = Probe(fd, Payload(v) == kFresh, &definite);
  errno = saved;
  if (d) d->refs.store(2, std::memory_order_release);  // the entry's and this call's
  const uint64_t want = Gen(v) | (d ? reinterpret_cast<uint64_t>(d) : definite ? kNotServed : Payload(v));
  uint64_t expected = busy;
  if (!slot->compare_exchange_strong(expected, want, std::memory_order_acq_rel)) {
    if (d) {  // reset meanwhile (close, dup2 onto it): nobody else has seen d
      d->refs.store(0, std::memory_order_relaxed);
      Destroy(d);
    }
    return nullptr;
  }
  return d;
}

// The Desc of `fd` with a reference for the caller (Unref), or nullptr: the kernel serves it.
inline Desc* Acquire(int fd) {
  Slot* slot = SlotOf(fd, false);
  const uint64_t v = slot ? slot->load(std::memory_order_acquire) : kUnknown;
  const uint64_t p = Payload(v);
  if (p == kNotServed || p == kBusy) return nullptr;
  if (Unexamined(p)) return Classify(fd);
  Desc* d = AsDesc(p);
  if (!TryRef(d)) return nullptr;
  if (slot->load(std::memory_order_acquire) != v) {  // reset meanwhile
    Unref(d);
    return nullptr;
  }
  return d;
}

// ---- timestamps --------------------------------------------------------------------------

void Touch(int fd, Desc* d) {
  pmemfs_touch_req q{PMEMFS_LEASE_VERSION, 0};
  const int saved = errno;
  // A filesystem turned read-only (-o remount, an error): later writes go to the kernel,
  // which answers EROFS.
  if (ioctl(fd, PMEMFS_IOC_TOUCH, &q) != 0 && errno == EROFS) d->writable.store(false, std::memory_order_relaxed);
  errno = saved;
}

// After a write in userspace: a touch when a second has passed since the last, else the
// file is left dirty for the next touch (close, fsync, a write a second later, exit).
void AfterWrite(int fd, Desc* d) {
  Stamp* s = d->stamp;
  s->last_fd.store(fd, std::memory_order_relaxed);
  const int64_t now = CoarseNs();
  int64_t last = s->last_touch.load(std::memory_order_relaxed);
  if ((last == INT64_MIN || now - last >= kTouchIntervalNs) &&  // INT64_MIN: never touched
      s->last_touch.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    s->dirty.store(false, std::memory_order_relaxed);
    Touch(fd, d);
  } else if (!s->dirty.load(std::memory_order_relaxed)) {
    s->dirty.store(true, std::memory_order_relaxed);
  }
}

void TouchIfDirty(int fd, Desc* d) {
  if (!d->may_touch || !d->stamp->dirty.exchange(false, std::memory_order_relaxed)) return;
  d->stamp->last_touch.store(CoarseNs(), std::memory_order_relaxed);
  Touch(fd, d);
}

// ---- the copies --------------------------------------------------------------------------

// The bytes asked for, clipped as the kernel clips them (MAX_RW_COUNT), and the raw sum;
// false for what the kernel must judge: a vector count out of range, a segment the kernel
// would refuse (negative as ssize_t, NULL with a length), or nothing to move.
bool Total(const iovec* iov, int cnt, uint64_t* total, uint64_t* raw) {
  if (cnt <= 0 || cnt > kIovMax) return false;
  uint64_t t = 0, r = 0;
  for (int i = 0; i < cnt; ++i) {
    const uint64_t len = iov[i].iov_len;
    if (len > static_cast<uint64_t>(SSIZE_MAX) || (len && !iov[i].iov_base)) return false;
    t = std::min(t + len, kMaxRw);
    r = r + len < r ? UINT64_MAX : r + len;
  }
  *total = t;
  *raw = r;
  return t > 0;
}

// As rw_verify_area: an offset the kernel refuses (negative, or overflowing with the length).
bool OffsetOk(int64_t off, uint64_t raw) { return off >= 0 && raw <= static_cast<uint64_t>(INT64_MAX - off); }

// The descriptor's file offset, advanced by `total` in the same system call (on FUSE,
// SEEK_CUR is the kernel's own: no request); -1 when the kernel must do the call (the
// offset is left as it was).
off_t Advance(int fd, uint64_t total, uint64_t raw) {
  const int saved = errno;
  const off_t end = lseek(fd, static_cast<off_t>(total), SEEK_CUR);
  off_t pos = end < 0 ? -1 : end - static_cast<off_t>(total);
  if (pos >= 0 && !OffsetOk(pos, raw)) {
    lseek(fd, pos, SEEK_SET);
    pos = -1;
  }
  errno = saved;
  return pos;
}

// Fills the page tables of the 2 MiB chunks of [off, off + n) that no copy has touched
// yet, with one madvise(MADV_POPULATE_*) each, instead of a page fault per 4 KiB page (or,
// for reads, per 16 pages with the kernel's fault-around). A fault costs about 25-40 us on
// the development VM (shadow paging), a populated page about 1 us; on bare metal the gain
// is smaller but the cost is no larger: the chunk's page-table page is allocated by its
// first fault anyway, and a device-dax maps a 2 MiB chunk with one PMD. Failure (a kernel
// before 5.14: EINVAL) leaves the pages to the faults.
void Populate(const Desc* d, uint64_t off, uint64_t n) {
  const Mapping& m = *d->map;
  for (uint64_t c = off / kPopulateChunk, last = (off + n - 1) / kPopulateChunk; c <= last; ++c) {
    std::atomic<uint64_t>& word = d->populated[c / 64];
    const uint64_t bit = uint64_t{1} << (c % 64);
    if (word.load(std::memory_order_relaxed) & bit) continue;
    if (word.fetch_or(bit, std::memory_order_relaxed) & bit) continue;  // another thread's
    const int saved = errno;
    const uint64_t start = c * kPopulateChunk;
    madvise(m.addr + start, std::min(kPopulateChunk, m.len - start),
            (m.prot & PROT_WRITE) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
    errno = saved;
  }
}

ssize_t CopyOut(const Desc* d, const iovec* iov, uint64_t off, uint64_t total) {
  const uint64_t size = d->map->file_size;
  if (off >= size) return 0;
  uint64_t left = std::min(total, size - off);
  Populate(d, off, left);
  const ssize_t n = static_cast<ssize_t>(left);
  const char* src = d->map->addr + off;
  for (int i = 0; left > 0; ++i) {
    const size_t k = std::min<uint64_t>(iov[i].iov_len, left);
    std::memcpy(iov[i].iov_base, src, k);
    src += k;
    left -= k;
  }
  return n;
}

// Durable on return: libpmem2's memcpy for the region's granularity. Several segments are
// copied without their own fence (or msync) and made durable together.
void CopyIn(const Desc* d, const iovec* iov, uint64_t off, uint64_t total) {
  const Mapping& m = *d->map;
  char* dst = m.addr + off;
  Populate(d, off, total);
  if (total <= iov[0].iov_len) {
    m.memcpy_fn(dst, iov[0].iov_base, total, 0);
    return;
  }
  const bool page = m.granularity == PMEM2_GRANULARITY_PAGE;
  const unsigned flags = page ? PMEM2_F_MEM_NOFLUSH : PMEM2_F_MEM_NODRAIN;
  char* p = dst;
  for (int i = 0; p < dst + total; ++i) {
    const size_t k = std::min<uint64_t>(iov[i].iov_len, dst + total - p);
    if (k) m.memcpy_fn(p, iov[i].iov_base, k, flags);
    p += k;
  }
  if (page) m.persist_fn(dst, total);  // one msync of the pages written
  else m.drain_fn();                    // one fence
}

// True when a write of `total` bytes at `off` stays inside the file (and under RLIMIT_FSIZE).
bool InPlace(const Desc* d, uint64_t off, uint64_t total) {
  return off + total <= d->map->file_size && off + total <= d->fsize_limit;
}

// O_APPEND as the kernel holds it now (asked when the description may be shared).
bool Appending(int fd, Desc* d) {
  if (d->shared.load(std::memory_order_relaxed)) {
    const int saved = errno;
    const int fl = fcntl(fd, F_GETFL);
    errno = saved;
    d->append.store(fl < 0 || (fl & O_APPEND), std::memory_order_relaxed);
  }
  return d->append.load(std::memory_order_relaxed);
}

}  // namespace

// ---- file_io.h ---------------------------------------------------------------------------

bool Read(int fd, const iovec* iov, int cnt, int64_t off, bool at_pos, int flags, ssize_t* ret) {
  Desc* d = Acquire(fd);
  if (!d) return false;
  uint64_t total = 0, raw = 0;
  bool served = false;
  if ((flags & ~kHonouredFlags) == 0 && Total(iov, cnt, &total, &raw)) {
    if (at_pos) {
      std::lock_guard lk(d->pos_mu);
      const off_t pos = Advance(fd, total, raw);
      if (pos >= 0) {
        *ret = CopyOut(d, iov, pos, total);
        if (static_cast<uint64_t>(*ret) < total) lseek(fd, pos + *ret, SEEK_SET);  // short at EOF
        served = true;
      }
    } else if (OffsetOk(off, raw)) {
      *ret = CopyOut(d, iov, off, total);
      served = true;
    }
  }
  Unref(d);
  return served;
}

bool Write(int fd, const iovec* iov, int cnt, int64_t off, bool at_pos, int flags, ssize_t* ret) {
  Desc* d = Acquire(fd);
  if (!d) return false;
  uint64_t total = 0, raw = 0;
  bool served = false;
  if (d->writable.load(std::memory_order_relaxed) && (flags & ~kHonouredFlags) == 0 &&
      Total(iov, cnt, &total, &raw) && !Appending(fd, d)) {
    if (at_pos) {
      std::lock_guard lk(d->pos_mu);
      const off_t pos = Advance(fd, total, raw);
      if (pos >= 0 && InPlace(d, pos, total)) {
        CopyIn(d, iov, pos, total);
        served = true;
      } else if (pos >= 0) {
        lseek(fd, pos, SEEK_SET);  // back: the kernel writes (or refuses) at the offset
      }
    } else if (OffsetOk(off, raw) && InPlace(d, off, total)) {
      CopyIn(d, iov, off, total);
      served = true;
    }
    if (served) {
      *ret = static_cast<ssize_t>(total);
      AfterWrite(fd, d);
    }
  }
  Unref(d);
  return served;
}

bool Fsync(int fd, bool data_only, int* ret) {
  Desc* d = Acquire(fd);
  if (!d) return false;
  // The daemon has nothing pending for a flagged file, and the bytes written here were
  // durable when written: only the timestamps remain (not part of fdatasync).
  const bool served = d->may_touch;
  if (served && !data_only) TouchIfDirty(fd, d);
  if (served) *ret = 0;
  Unref(d);
  return served;
}

void BeforeClose(int fd) {
  Slot* slot = SlotOf(fd, false);
  if (!slot) return;
  const uint64_t p = Payload(slot->load(std::memory_order_acquire));
  if (IsDesc(p) && InOwner() && TryRef(AsDesc(p))) {
    TouchIfDirty(fd, AsDesc(p));
    Unref(AsDesc(p));
  }
  Reset(fd);
}

void Closed(int fd) { Reset(fd); }

void BeforeCloseRange(unsigned lo, unsigned hi) {
  hi = std::min(hi, kChunks * kChunkSize - 1);
  for (uint64_t fd = lo; fd <= hi; fd += kChunkSize - (fd & (kChunkSize - 1))) {
    Slot* chunk = g_chunks[fd >> kChunkBits].load(std::memory_order_acquire);
    if (!chunk) continue;
    const uint64_t end = std::min<uint64_t>(hi, (fd | (kChunkSize - 1)));
    for (uint64_t f = fd; f <= end; ++f) {
      if (Payload(chunk[f & (kChunkSize - 1)].load(std::memory_order_relaxed)) != kUnknown)
        BeforeClose(static_cast<int>(f));
    }
  }
}

void ClosedRange(unsigned lo, unsigned hi) {
  hi = std::min(hi, kChunks * kChunkSize - 1);
  for (uint64_t fd = lo; fd <= hi; fd += kChunkSize - (fd & (kChunkSize - 1))) {
    Slot* chunk = g_chunks[fd >> kChunkBits].load(std::memory_order_acquire);
    if (!chunk) continue;
    const uint64_t end = std::min<uint64_t>(hi, (fd | (kChunkSize - 1)));
    for (uint64_t f = fd; f <= end; ++f) Reset(static_cast<int>(f));
  }
}

void Duplicated(int oldfd, int newfd) {
  Reset(newfd);
  if (oldfd == newfd) return;
  // One Desc per description: the original is examined now if it was not yet, so that
  // F_SETFL through either descriptor reaches the one Desc.
  if (Desc* first = Acquire(oldfd)) Unref(first);
  Slot* from = SlotOf(oldfd, false);
  if (!from) return;
  const uint64_t v = from->load(std::memory_order_acquire);
  const uint64_t p = Payload(v);
  if (p != kNotServed && !IsDesc(p)) return;
  Desc* d = nullptr;
  if (IsDesc(p)) {  // the same open file description: the same Desc, one more entry
    d = AsDesc(p);
    if (!InOwner() || !TryRef(d)) return;
    if (from->load(std::memory_order_acquire) != v) return Unref(d);
  }
  Slot* to = SlotOf(newfd, true);
  uint64_t cur = to ? to->load(std::memory_order_acquire) : kNotServed;
  if (!to || Payload(cur) != kUnknown || !to->compare_exchange_strong(cur, Gen(cur) | p, std::memory_order_acq_rel)) {
    if (d) Unref(d);
  }
}

void Opened(int fd) { Reset(fd, kFresh); }

void FlagsChanged(int fd) {
  Desc* d = nullptr;
  Slot* slot = SlotOf(fd, false);
  if (!slot) return;
  const uint64_t p = Payload(slot->load(std::memory_order_acquire));
  if (!IsDesc(p) || !TryRef(d = AsDesc(p))) return;
  const int saved = errno;
  const int fl = fcntl(fd, F_GETFL);
  errno = saved;
  // O_APPEND set by another process sharing the description is not seen: documented.
  if (fl >= 0) d->append.store(fl & O_APPEND, std::memory_order_relaxed);
  Unref(d);
}

namespace {

// ---- process events ----------------------------------------------------------------------

void PrepareFork() {
  g_pool_mu.lock();
  g_stamp_mu.lock();
  // Every description open now is shared with the child: O_APPEND is asked before writes.
  for (Desc* d : g_all) d->shared.store(true, std::memory_order_relaxed);
  for (std::atomic<Slot*>& c : g_chunks) {
    Slot* chunk = c.load(std::memory_order_relaxed);
    if (!chunk) continue;
    for (unsigned i = 0; i < kChunkSize; ++i) {
      uint64_t v = chunk[i].load(std::memory_order_relaxed);
      if (Payload(v) == kFresh) chunk[i].compare_exchange_strong(v, Gen(v) | kUnknown, std::memory_order_relaxed);
    }
  }
}

void ParentAfterFork() {
  g_stamp_mu.unlock();
  g_pool_mu.unlock();
}

// Only this thread exists in the child: references held by the others' calls in flight,
// entries they were examining and locks they held are gone with them.
void ChildAfterFork() {
  g_owner.store(getpid(), std::memory_order_relaxed);
  std::unordered_map<Desc*, uint32_t> named;
  for (std::atomic<Slot*>& c : g_chunks) {
    Slot* chunk = c.load(std::memory_order_relaxed);
    if (!chunk) continue;
    for (unsigned i = 0; i < kChunkSize; ++i) {
      const uint64_t v = chunk[i].load(std::memory_order_relaxed);
      if (Payload(v) == kBusy) chunk[i].store(Gen(v) + kGenOne, std::memory_order_relaxed);
      else if (IsDesc(Payload(v))) named[AsDesc(Payload(v))]++;
    }
  }
  std::vector<Desc*> orphans;
  for (Desc* d : g_all) {
    if (d->refs.load(std::memory_order_relaxed) == 0) continue;
    new (&d->pos_mu) std::mutex();
    // fork copies no page tables of shared file mappings: the child populates again.
    for (size_t i = 0; i < PopulatedWords(d->map->len); ++i) d->populated[i].store(0, std::memory_order_relaxed);
    auto it = named.find(d);
    const uint32_t n = it == named.end() ? 0 : it->second;
    d->refs.store(n, std::memory_order_relaxed);
    if (n == 0) orphans.push_back(d);
  }
  g_stamp_mu.unlock();
  g_pool_mu.unlock();
  for (Desc* d : orphans) Destroy(d);
}

__attribute__((constructor)) void Init() {
  g_owner.store(getpid(), std::memory_order_relaxed);
  pthread_atfork(PrepareFork, ParentAfterFork, ChildAfterFork);
}

// exit(): files written in the last second get their timestamps.
__attribute__((destructor)) void Fini() {
  if (!InOwner()) return;  // a vfork child's exit
  std::vector<std::pair<int, Stamp*>> dirty;
  {
    std::lock_guard lk(g_stamp_mu);
    for (auto& [key, s] : g_stamps) {
      if (s->dirty.load(std::memory_order_relaxed)) dirty.push_back({s->last_fd.load(std::memory_order_relaxed), s});
    }
  }
  for (auto [fd, s] : dirty) {
    Slot* slot = SlotOf(fd, false);
    const uint64_t p = slot ? Payload(slot->load(std::memory_order_acquire)) : kUnknown;
    if (IsDesc(p) && TryRef(AsDesc(p))) {
      if (AsDesc(p)->stamp == s) TouchIfDirty(fd, AsDesc(p));
      Unref(AsDesc(p));
    }
  }
}

}  // namespace
}  // namespace pmemfs::client::io

// ---- libpmemfs.h -------------------------------------------------------------------------

namespace io = pmemfs::client::io;

extern "C" {

ssize_t pmemfs_pread(int fd, void* buf, size_t count, off_t offset) {
  iovec v{buf, count};
  ssize_t r;
  if (io::Read(fd, &v, 1, offset, false, 0, &r)) return r;
  return pread(fd, buf, count, offset);
}

ssize_t pmemfs_pwrite(int fd, const void* buf, size_t count, off_t offset) {
  iovec v{const_cast<void*>(buf), count};
  ssize_t r;
  if (io::Write(fd, &v, 1, offset, false, 0, &r)) return r;
  return pwrite(fd, buf, count, offset);
}

ssize_t pmemfs_preadv(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  ssize_t r;
  if (io::Read(fd, iov, iovcnt, offset, false, 0, &r)) return r;
  return preadv(fd, iov, iovcnt, offset);
}

ssize_t pmemfs_pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  ssize_t r;
  if (io::Write(fd, iov, iovcnt, offset, false, 0, &r)) return r;
  return pwritev(fd, iov, iovcnt, offset);
}

int pmemfs_fsync(int fd) {
  int r;
  if (io::Fsync(fd, false, &r)) return r;
  return fsync(fd);
}

void pmemfs_forget(int fd) {
  const int saved = errno;
  io::BeforeClose(fd);
  errno = saved;
}

int pmemfs_close(int fd) {
  pmemfs_forget(fd);
  const int r = close(fd);
  const int saved = errno;
  io::Closed(fd);
  errno = saved;
  return r;
}

int pmemfs_io_direct(int fd) {
  const int saved = errno;
  int mask = 0;
  if (io::Desc* d = io::Acquire(fd)) {  // examines the descriptor if needed
    const bool w = d->writable.load(std::memory_order_relaxed) && !d->append.load(std::memory_order_relaxed);
    mask = PMEMFS_IO_READ | (w ? PMEMFS_IO_WRITE : 0);
    io::Unref(d);
  }
  errno = saved;
  return mask;
}

}  // extern "C"
