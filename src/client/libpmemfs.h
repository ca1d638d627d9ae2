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

/* The last error of this thread, in words. */
const char *pmemfs_errormsg(void);

#ifdef __cplusplus
}
#endif

#endif /* PMEMFS_CLIENT_LIBPMEMFS_H_ */
