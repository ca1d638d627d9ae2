// SPDX-License-Identifier: BSD-3-Clause
/* libpmemfs: direct mapping of pmemfs files that have immutable extents.
 *
 * A file flagged with `setfattr -n user.pmemfs.immutable_extents -v 1 FILE` never changes
 * its offset-to-region map. pmemfs_map() takes a mapping lease from the daemon through
 * the open file, opens the region itself with the caller's own permissions, and maps
 * every extent of the file at consecutive addresses: loads and stores then go straight to
 * the media. Stores are made durable with pmemfs_persist() (CPU cache flushes, no system
 * call), exactly as libpmem2 does for a mapping of the region itself. The region is reached
 * only through mappings (a device-dax supports nothing else).
 *
 * The lease lives with a private duplicate of the descriptor (close-on-exec): the caller
 * may close its descriptor; fork() children share it; exec() or the death of every holder
 * ends it. While it exists the daemon refuses to clear the flag (EBUSY).
 *
 * Errors: NULL or -1 with errno set; pmemfs_errormsg() says more.
 *   ENOTTY  the file is not on pmemfs
 *   EINVAL  the file has no immutable extents, or its extents are not at multiples of the
 *           region's mapping alignment (a device-dax maps only there; set the flag again
 *           with -v 1)
 *   EACCES  (or another open(2) error) the region cannot be opened by this process (the
 *           daemon refuses the lease to a caller who could not open the region itself:
 *           a user who cannot map a file cannot keep its flag from being cleared), or a
 *           writable mapping was asked on a read-only descriptor or lease
 *   ESTALE  the region at the path the daemon gave holds another filesystem
 *
 * Thread-safe. */
#ifndef PMEMFS_CLIENT_LIBPMEMFS_H_
#define PMEMFS_CLIENT_LIBPMEMFS_H_

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Maps the whole of the file open on `fd` (its size rounded up to its extent alignment)
 * and returns the address; `*len` receives the length. The address is a multiple of the
 * file's alignment (2 MiB alignment allows huge pages).
 *
 * The mapping is PROT_READ|PROT_WRITE when the lease allows writing: `fd` open O_RDWR, the
 * filesystem mounted read-write (and not stopped after an error), and the caller able to
 * open the region for writing. Otherwise it is PROT_READ only, and a store faults
 * (SIGSEGV). pmemfs_mapping_prot() tells which; pmemfs_map_prot() asks for one. EACCES
 * when `fd` is open O_WRONLY (as mmap(2)). */
void *pmemfs_map(int fd, size_t *len);

/* Like pmemfs_map(), with `prot` PROT_READ or PROT_READ|PROT_WRITE exactly. PROT_WRITE
 * fails with EACCES, as mmap(2) of MAP_SHARED|PROT_WRITE does, when `fd` is not open
 * O_RDWR or the lease allows reading only (a read-only mount, or no write access to the
 * region). */
void *pmemfs_map_prot(int fd, size_t *len, int prot);

/* The protection (PROT_READ, or PROT_READ|PROT_WRITE) of the pmemfs mapping holding
 * `addr`; -1 with errno EINVAL when `addr` is in none. */
int pmemfs_mapping_prot(const void *addr);

/* Unmaps a mapping returned by pmemfs_map() and drops its lease. */
int pmemfs_unmap(void *addr);

/* Makes [addr, addr+len) of a mapping durable: flush + drain. */
void pmemfs_persist(const void *addr, size_t len);
/* Flushes [addr, addr+len) from the CPU caches without waiting. */
void pmemfs_flush(const void *addr, size_t len);
/* Waits until every flush issued so far is durable. */
void pmemfs_drain(void);

/* If [addr, addr+len) lies within a mapping made by pmemfs_map(), returns that mapping's
 * start address and sets *map_len; otherwise NULL. */
void *pmemfs_find(const void *addr, size_t len, size_t *map_len);

/* ---- Read and write in userspace --------------------------------------------------------
 *
 * pmemfs_pread() and pmemfs_pwrite() (and the vector forms) copy between the caller's
 * buffers and the file's bytes in the region without a system call, for a descriptor of a
 * flagged file that this process can lease and map (as pmemfs_map); the answers are the
 * ones pread(2)/pwrite(2) give through the mount:
 *   - reads stop at EOF (a short count, 0 at or past EOF);
 *   - writes are in place; data is durable when the call returns (libpmem2's memcpy for the
 *     region's store granularity: non-temporal stores or cache flushes and one fence, or
 *     msync of the region's pages when its granularity is the page, as on /dev/shm);
 *   - everything the kernel or the daemon refuses or decides is left to them, so the
 *     errors are theirs: a write that would extend the file, any write on an O_APPEND
 *     descriptor (EPERM from the daemon, as the flag forbids changing the map), a
 *     descriptor not open for writing (EBADF), negative offsets, overflowing lengths,
 *     unsupported flags, more than IOV_MAX vectors.
 * Any other descriptor (not pmemfs, not flagged, open O_WRONLY, O_PATH, a caller without
 * access to the region, a read-only lease for a write) gets the system call: these
 * functions may be used on every descriptor.
 *
 * The descriptor is examined once, at its first use (fstatfs, the flag, the lease ioctl,
 * the mapping), and what was found is kept for its number: call pmemfs_close() (or
 * pmemfs_forget() before close(2), dup2(2) onto it, or fcntl(F_SETFL) on it) so that a
 * number reused for another file is examined again. The LD_PRELOAD shim does that for
 * close, dup2, dup3, fcntl and the calls that create descriptors. A descriptor examined
 * while its file was not flagged stays with the system call until it is forgotten.
 *
 * The lease is taken on the descriptor's own open file description and ends with it: while
 * a process has used a descriptor of a flagged file this way, clearing the flag answers
 * EBUSY (as for a mapping).
 *
 * Timestamps: the daemon sets mtime and ctime (and clears set-user-ID, as a write does)
 * when it is told to (PMEMFS_IOC_TOUCH): at the first write, then at most once per second
 * per file while writing, and at pmemfs_fsync(), pmemfs_close() and pmemfs_forget() of a
 * descriptor that wrote, and at exit(). Between those, stat(2) may show an mtime up to one
 * second older than the last write, as mtime lags stores through a DAX mapping.
 *
 * Not the kernel's: a buffer that is not mapped faults (SIGSEGV) instead of EFAULT; a
 * region that disappears under a mapping faults (SIGBUS); the file offset used by the
 * shim's read()/write() is serialised between the threads of one process, not between
 * processes sharing the open file description. Thread-safe; fork() children inherit it.
 */
ssize_t pmemfs_pread(int fd, void *buf, size_t count, off_t offset);
ssize_t pmemfs_pwrite(int fd, const void *buf, size_t count, off_t offset);
ssize_t pmemfs_preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset);
ssize_t pmemfs_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset);

/* fsync(2) of the descriptor: for one served in userspace, the data is already durable,
 * and the timestamps are brought up to date; others get the system call. */
int pmemfs_fsync(int fd);

/* Forgets the descriptor (timestamps brought up to date first), then close(2)s it. */
int pmemfs_close(int fd);

/* Forgets what was found about the descriptor (timestamps brought up to date first); its
 * next use examines it again. For close(2), dup2(2) onto it, and fcntl(F_SETFL). */
void pmemfs_forget(int fd);

/* How the descriptor's reads and writes are served, examining it if needed: a mask of
 * PMEMFS_IO_READ and PMEMFS_IO_WRITE (in userspace), 0 when the system call serves both
 * (pmemfs_errormsg() may say why). */
#define PMEMFS_IO_READ 1
#define PMEMFS_IO_WRITE 2
int pmemfs_io_direct(int fd);

/* The last error of this thread, in words. */
const char *pmemfs_errormsg(void);

#ifdef __cplusplus
}
#endif

#endif /* PMEMFS_CLIENT_LIBPMEMFS_H_ */
