// SPDX-License-Identifier: BSD-3-Clause
// libpmemfs-preload.so, read/write family: with LD_PRELOAD, read, write, pread, pwrite,
// readv, writev, preadv, pwritev, preadv2, pwritev2 (and their 64-bit and _FORTIFY_SOURCE
// names) on a descriptor of a flagged pmemfs file are served in userspace by libpmemfs
// (file_io.h); every other descriptor and every case it leaves to the kernel goes to libc.
//
// The calls that close, duplicate or create descriptors are wrapped only to keep
// libpmemfs's per-descriptor table true (file_io.h): close, close_range, closefrom, fclose,
// dup, dup2, dup3, fcntl (F_DUPFD, F_DUPFD_CLOEXEC, F_SETFL), open/openat/creat, fopen,
// freopen, socket, accept, pipe, socketpair, memfd_create, eventfd, epoll_create. fsync and
// fdatasync of a served descriptor return at once (its bytes are durable when written;
// fsync brings the timestamps up to date).
#undef _FORTIFY_SOURCE  // these definitions are the functions themselves
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client/file_io.h"

namespace io = pmemfs::client::io;

namespace {

// The next definition of `name` (libc's), looked up once.
template <typename Fn>
Fn Next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}
#define REAL(name) \
  static const auto real = Next<decltype(&::name)>(#name)

// Runs `f` with errno preserved (bookkeeping after a call must not change its errno).
template <typename F>
void Keeping(F&& f) {
  const int saved = errno;
  f();
  errno = saved;
}

int Created(int fd) {
  if (fd >= 0) Keeping([&] { io::Opened(fd); });
  return fd;
}

}  // namespace

extern "C" {

[[noreturn]] void __chk_fail(void);

// ---- reads ---------------------------------------------------------------------------------

ssize_t read(int fd, void* buf, size_t n) {
  REAL(read);
  iovec v{buf, n};
  ssize_t r;
  return io::Read(fd, &v, 1, 0, true, 0, &r) ? r : real(fd, buf, n);
}

ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  REAL(pread);
  iovec v{buf, n};
  ssize_t r;
  return io::Read(fd, &v, 1, off, false, 0, &r) ? r : real(fd, buf, n, off);
}
ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return pread(fd, buf, n, off); }

ssize_t readv(int fd, const iovec* iov, int cnt) {
  REAL(readv);
  ssize_t r;
  return io::Read(fd, iov, cnt, 0, true, 0, &r) ? r : real(fd, iov, cnt);
}

ssize_t preadv(int fd, const iovec* iov, int cnt, off_t off) {
  REAL(preadv);
  ssize_t r;
  return io::Read(fd, iov, cnt, off, false, 0, &r) ? r : real(fd, iov, cnt, off);
}
ssize_t preadv64(int fd, const iovec* iov, int cnt, off_t off) { return preadv(fd, iov, cnt, off); }

ssize_t preadv2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  REAL(preadv2);
  ssize_t r;
  return io::Read(fd, iov, cnt, off, off == -1, flags, &r) ? r : real(fd, iov, cnt, off, flags);
}
ssize_t preadv64v2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  return preadv2(fd, iov, cnt, off, flags);
}

// _FORTIFY_SOURCE: the buffer's size is checked as glibc does, then the call above.
ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}
ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return pread(fd, buf, n, off);
}
ssize_t __pread64_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  return __pread_chk(fd, buf, n, off, buflen);
}

// ---- writes --------------------------------------------------------------------------------

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  iovec v{const_cast<void*>(buf), n};
  ssize_t r;
  return io::Write(fd, &v, 1, 0, true, 0, &r) ? r : real(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite);
  iovec v{const_cast<void*>(buf), n};
  ssize_t r;
  return io::Write(fd, &v, 1, off, false, 0, &r) ? r : real(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

ssize_t writev(int fd, const iovec* iov, int cnt) {
  REAL(writev);
  ssize_t r;
  return io::Write(fd, iov, cnt, 0, true, 0, &r) ? r : real(fd, iov, cnt);
}

ssize_t pwritev(int fd, const iovec* iov, int cnt, off_t off) {
  REAL(pwritev);
  ssize_t r;
  return io::Write(fd, iov, cnt, off, false, 0, &r) ? r : real(fd, iov, cnt, off);
}
ssize_t pwritev64(int fd, const iovec* iov, int cnt, off_t off) { return pwritev(fd, iov, cnt, off); }

ssize_t pwritev2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  REAL(pwritev2);
  ssize_t r;
  return io::Write(fd, iov, cnt, off, off == -1, flags, &r) ? r : real(fd, iov, cnt, off, flags);
}
ssize_t pwritev64v2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  return pwritev2(fd, iov, cnt, off, flags);
}

int fsync(int fd) {
  REAL(fsync);
  int r;
  return io::Fsync(fd, false, &r) ? r : real(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync);
  int r;
  return io::Fsync(fd, true, &r) ? r : real(fd);
}

// ---- descriptors closed or duplicated ----------------------------------------------------

int close(int fd) {
  REAL(close);
  Keeping([&] { io::BeforeClose(fd); });
  int r = real(fd);
  Keeping([&] { io::Closed(fd); });
  return r;
}

int close_range(unsigned lo, unsigned hi, int flags) {
  REAL(close_range);
  const bool closes = !(flags & CLOSE_RANGE_CLOEXEC);
  if (closes) Keeping([&] { io::BeforeCloseRange(lo, hi); });
  int r = real(lo, hi, flags);
  if (closes) Keeping([&] { io::ClosedRange(lo, hi); });
  return r;
}

void closefrom(int lo) {
  REAL(closefrom);
  if (lo < 0) return real(lo);
  Keeping([&] { io::BeforeCloseRange(lo, ~0u); });
  real(lo);
  Keeping([&] { io::ClosedRange(lo, ~0u); });
}

int fclose(FILE* fp) {
  REAL(fclose);
  const int fd = fp ? fileno(fp) : -1;
  Keeping([&] { io::BeforeClose(fd); });
  int r = real(fp);
  Keeping([&] { io::Closed(fd); });
  return r;
}

int dup(int fd) {
  REAL(dup);
  int r = real(fd);
  if (r >= 0) Keeping([&] { io::Duplicated(fd, r); });
  return r;
}

int dup2(int fd, int to) {
  REAL(dup2);
  if (fd == to) return real(fd, to);
  Keeping([&] { io::BeforeClose(to); });
  int r = real(fd, to);
  Keeping([&] { r >= 0 ? io::Duplicated(fd, to) : io::Closed(to); });
  return r;
}

int dup3(int fd, int to, int flags) {
  REAL(dup3);
  if (fd == to) return real(fd, to, flags);  // EINVAL
  Keeping([&] { io::BeforeClose(to); });
  int r = real(fd, to, flags);
  Keeping([&] { r >= 0 ? io::Duplicated(fd, to) : io::Closed(to); });
  return r;
}

}  // extern "C"

namespace {

template <typename Fn>
int Fcntl(Fn real, int fd, int cmd, void* arg) {
  int r = real(fd, cmd, arg);
  if (r < 0) return r;
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) Keeping([&] { io::Duplicated(fd, r); });
  else if (cmd == F_SETFL) Keeping([&] { io::FlagsChanged(fd); });
  return r;
}

using FcntlFn = int (*)(int, int, ...);

}  // namespace

extern "C" {

int fcntl(int fd, int cmd, ...) {
  static const auto real = Next<FcntlFn>("fcntl");
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);  // as glibc: every argument fcntl takes fits a pointer
  va_end(ap);
  return Fcntl(real, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
  static const auto real = Next<FcntlFn>("fcntl64");
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return Fcntl(real, fd, cmd, arg);
}

// ---- descriptors created: a stale entry for the number is forgotten --------------------------

// open's mode is read only when O_CREAT or O_TMPFILE asks for one, as glibc does.
#define PMEMFS_MODE_ARG(flags)                                          \
  mode_t mode = 0;                                                      \
  if ((flags) & (O_CREAT | __O_TMPFILE)) {                              \
    va_list ap;                                                         \
    va_start(ap, flags);                                                \
    mode = va_arg(ap, mode_t);                                          \
    va_end(ap);                                                         \
  }

int open(const char* path, int flags, ...) {
  REAL(open);
  PMEMFS_MODE_ARG(flags);
  return Created(real(path, flags, mode));
}
int open64(const char* path, int flags, ...) {
  REAL(open64);
  PMEMFS_MODE_ARG(flags);
  return Created(real(path, flags, mode));
}
int openat(int dirfd, const char* path, int flags, ...) {
  REAL(openat);
  PMEMFS_MODE_ARG(flags);
  return Created(real(dirfd, path, flags, mode));
}
int openat64(int dirfd, const char* path, int flags, ...) {
  REAL(openat64);
  PMEMFS_MODE_ARG(flags);
  return Created(real(dirfd, path, flags, mode));
}
int __open_2(const char* path, int flags) { return open(path, flags); }
int __open64_2(const char* path, int flags) { return open64(path, flags); }
int __openat_2(int dirfd, const char* path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char* path, int flags) { return openat64(dirfd, path, flags); }
int creat(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char* path, mode_t mode) { return open64(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

FILE* fopen(const char* path, const char* mode) {
  REAL(fopen);
  FILE* f = real(path, mode);
  if (f) Created(fileno(f));
  return f;
}
FILE* fopen64(const char* path, const char* mode) {
  REAL(fopen64);
  FILE* f = real(path, mode);
  if (f) Created(fileno(f));
  return f;
}
FILE* freopen(const char* path, const char* mode, FILE* fp) {
  REAL(freopen);
  const int old = fp ? fileno(fp) : -1;
  Keeping([&] { io::BeforeClose(old); });
  FILE* f = real(path, mode, fp);
  Keeping([&] { io::Closed(old); });
  if (f) Created(fileno(f));
  return f;
}
FILE* freopen64(const char* path, const char* mode, FILE* fp) {
  REAL(freopen64);
  const int old = fp ? fileno(fp) : -1;
  Keeping([&] { io::BeforeClose(old); });
  FILE* f = real(path, mode, fp);
  Keeping([&] { io::Closed(old); });
  if (f) Created(fileno(f));
  return f;
}

int socket(int domain, int type, int protocol) {
  REAL(socket);
  return Created(real(domain, type, protocol));
}
int accept(int fd, sockaddr* addr, socklen_t* len) {
  REAL(accept);
  return Created(real(fd, addr, len));
}
int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  REAL(accept4);
  return Created(real(fd, addr, len, flags));
}
int pipe(int fds[2]) {
  REAL(pipe);
  int r = real(fds);
  if (r == 0) Created(fds[0]), Created(fds[1]);
  return r;
}
int pipe2(int fds[2], int flags) {
  REAL(pipe2);
  int r = real(fds, flags);
  if (r == 0) Created(fds[0]), Created(fds[1]);
  return r;
}
int socketpair(int domain, int type, int protocol, int fds[2]) {
  REAL(socketpair);
  int r = real(domain, type, protocol, fds);
  if (r == 0) Created(fds[0]), Created(fds[1]);
  return r;
}
int memfd_create(const char* name, unsigned flags) {
  REAL(memfd_create);
  return Created(real(name, flags));
}
int eventfd(unsigned initval, int flags) {
  REAL(eventfd);
  return Created(real(initval, flags));
}
int epoll_create1(int flags) {
  REAL(epoll_create1);
  return Created(real(flags));
}

}  // extern "C"
