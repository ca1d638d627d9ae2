// SPDX-License-Identifier: BSD-3-Clause
/* The direct-mapping protocol between libpmemfs (src/client) and the pmemfs daemon.
 *
 * A client asks for a mapping lease with an ioctl on an open file of a file that has
 * immutable extents. The daemon answers with the region's identity and one page of the
 * file's extent list; further pages are asked for with `first_extent`. The lease belongs
 * to the open file handle the ioctl was issued on: it ends when that handle is released
 * (the last close of that open file description, or the death of every process holding
 * it). While any lease on a file exists its extents cannot change: clearing the flag
 * answers EBUSY.
 *
 * Access (version 2): the reply says what the lease allows, `access`: always
 * PMEMFS_LEASE_READ, and PMEMFS_LEASE_WRITE only when the descriptor was opened O_RDWR, the
 * filesystem is writable (not -o ro, no sticky error), and the caller could open the
 * region for writing itself. A client maps PROT_READ unless it has PMEMFS_LEASE_WRITE.
 * The daemon grants a lease only to a caller that could open the region itself (mode bits
 * of the region against the caller's fsuid, fsgid and supplementary groups; CAP_DAC_OVERRIDE
 * or, for reading, CAP_DAC_READ_SEARCH): a user who cannot map the file cannot hold its flag.
 *
 * Timestamps (version 3): bytes written in userspace (libpmemfs's pmemfs_pwrite, the
 * LD_PRELOAD shim's write()) never reach the daemon, so the client asks it with
 * PMEMFS_IOC_TOUCH to do what a write through the mount does to the inode: mtime and ctime
 * set to now, set-user-ID (and group-executable set-group-ID) cleared unless the caller
 * holds CAP_FSETID, security.capability removed; one journal transaction. Clients send it
 * at most once per second per file while writing, and at close and fsync (libpmemfs.h).
 * Errors: EBADF (the descriptor is not open for writing), EINVAL (no immutable extents,
 * bad version), EROFS (read-only or stopped filesystem), ENOTTY (a daemon before version 3).
 *
 * Lease errors: ENOTTY (not pmemfs), EINVAL (no immutable extents, bad version or flags),
 * EBADFD (PMEMFS_LEASE_DIRECT_ONLY and an open file that uses the page cache), ERANGE
 * (first_extent past the end), EACCES (the descriptor is not open for reading, as mmap(2)
 * requires, or the caller could not open the region for reading).
 *
 * The ioctl buffer is one struct pmemfs_lease_reply; the request occupies its first 16
 * bytes on the way in.
 *
 * C-compatible, fixed layout; shared by the daemon (fs/fuse_ops.cc) and the client. */
#ifndef PMEMFS_COMMON_LEASE_PROTOCOL_H_
#define PMEMFS_COMMON_LEASE_PROTOCOL_H_

#include <linux/ioctl.h>
#include <stdint.h>

#define PMEMFS_LEASE_VERSION 3 /* 2: `access` (was reserved in 1); 3: request flags, PMEMFS_IOC_TOUCH */
#define PMEMFS_LEASE_MIN_VERSION 2 /* the oldest lease request the daemon still answers */
#define PMEMFS_LEASE_READ 1u
#define PMEMFS_LEASE_WRITE 2u
/* In `access` (version 3): some open file of this file, in any process, uses the kernel
 * page cache (it was opened before the flag was set; every later open bypasses it). A
 * client that copies into the file in userspace leaves writes to the kernel meanwhile: a
 * write through the mount keeps that cache coherent, a store into the region does not. */
#define PMEMFS_LEASE_CACHED_OPENS 4u
/* Where a client finds the filesystem's uuid in the region (the superblock's uuid field),
 * to check that the region path names the filesystem the daemon serves. */
#define PMEMFS_SB_UUID_OFFSET 40
#define PMEMFS_LEASE_EXTENTS 160 /* extents per reply page */

struct pmemfs_lease_extent {
  uint64_t file_off;   /* bytes */
  uint64_t region_off; /* bytes from the start of the region */
  uint64_t len;        /* bytes */
};

/* Request flags (version 3; ignored in a version 2 request, unknown ones EINVAL). */
#define PMEMFS_LEASE_DIRECT_ONLY 1u /* refuse with EBADFD, taking no lease, an open file that
                                       uses the kernel page cache (opened before the flag was
                                       set): only direct-I/O opens bypass it like the client */

struct pmemfs_lease_req {
  uint32_t version;      /* PMEMFS_LEASE_VERSION */
  uint32_t flags;        /* PMEMFS_LEASE_DIRECT_ONLY; zero in version 2 */
  uint64_t first_extent; /* index of the first extent wanted */
};

struct pmemfs_lease_reply {
  uint32_t version;
  uint32_t granularity;  /* 0 byte, 1 cache line, 2 page (as libpmem2's enum) */
  uint8_t uuid[16];      /* the filesystem's uuid, from the superblock */
  char region_path[256]; /* absolute path the daemon opened */
  uint64_t region_size;
  uint64_t file_size;    /* bytes; mappable length is file_size rounded up to align */
  uint64_t align;        /* the file's immutable-extents alignment, bytes */
  uint64_t total_extents;
  uint64_t first_extent;
  uint32_t count;        /* extents in this page */
  uint32_t access;       /* PMEMFS_LEASE_READ, | PMEMFS_LEASE_WRITE when writing is allowed */
  struct pmemfs_lease_extent extents[PMEMFS_LEASE_EXTENTS];
};

struct pmemfs_touch_req {
  uint32_t version;  /* PMEMFS_LEASE_VERSION, at least 3 */
  uint32_t reserved; /* zero */
};

#ifdef __cplusplus
static_assert(sizeof(struct pmemfs_touch_req) == 8, "touch request layout");
static_assert(sizeof(struct pmemfs_lease_req) == 16, "lease request layout");
static_assert(sizeof(struct pmemfs_lease_reply) == 328 + 24 * PMEMFS_LEASE_EXTENTS, "lease reply layout");
#endif

/* _IOWR: the request goes in, the reply (same buffer size) comes out. FUSE restricted
 * ioctls take their sizes from this encoding. */
#define PMEMFS_IOC_LEASE _IOWR('P', 0x51, struct pmemfs_lease_reply)
#define PMEMFS_IOC_TOUCH _IOW('P', 0x52, struct pmemfs_touch_req)

#endif /* PMEMFS_COMMON_LEASE_PROTOCOL_H_ */
