// SPDX-License-Identifier: BSD-3-Clause
// libpmemfs internals (not installed): the userspace read/write path as the LD_PRELOAD
// shim (preload_io.cc) calls it. The public forms are pmemfs_pread & co (libpmemfs.h).
//
// Read/Write/Fsync return true when they served the call (*ret holds the result) and
// false when the caller must make the system call itself: a descriptor that is not a
// flagged pmemfs file this process could lease, and every case left to the kernel so that
// the answer is the kernel's (O_APPEND, a write past EOF, a negative offset, flags other
// than RWF_HIPRI/RWF_DSYNC/RWF_SYNC, lengths the kernel would refuse). For a descriptor
// already known not to be served, the check is a table lookup.
//
// The bookkeeping calls keep the per-descriptor table true: each must be called around the
// system call named, in the order given, with errno preserved by the caller.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>

namespace pmemfs::client::io {

// at_pos: at the descriptor's file offset, which is advanced (read, readv, preadv2 at -1);
// `off` is then ignored.
bool Read(int fd, const iovec* iov, int iovcnt, int64_t off, bool at_pos, int flags, ssize_t* ret);
bool Write(int fd, const iovec* iov, int iovcnt, int64_t off, bool at_pos, int flags, ssize_t* ret);
// fsync (data_only false) or fdatasync.
bool Fsync(int fd, bool data_only, int* ret);

// Before close(fd), dup2/dup3 onto fd, or a close_range/closefrom covering it: brings the
// file's timestamps up to date and forgets fd.
void BeforeClose(int fd);
// After such a call (successful or not): forgets fd again (it may have been examined
// meanwhile, by another thread).
void Closed(int fd);
// Before/after close_range(lo, hi) or closefrom(lo) (hi = ~0u).
void BeforeCloseRange(unsigned lo, unsigned hi);
void ClosedRange(unsigned lo, unsigned hi);
// After a successful dup/dup2/dup3/F_DUPFD: `newfd` names oldfd's open file description.
void Duplicated(int oldfd, int newfd);
// After a call returned a new descriptor (open, socket, pipe, ...): forgets anything a
// stale entry said about its number.
void Opened(int fd);
// After a successful fcntl(F_SETFL): O_APPEND may have changed.
void FlagsChanged(int fd);

}  // namespace pmemfs::client::io
