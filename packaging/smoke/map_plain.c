// SPDX-License-Identifier: BSD-3-Clause
/* Smoke test of the installed LD_PRELOAD shim: a program that knows nothing of pmemfs
 * maps FILE with mmap(MAP_SHARED, PROT_READ|PROT_WRITE), stores a pattern at offset 8192
 * and msyncs. Without the shim the kernel refuses the shared mapping of a flagged file
 * (ENODEV): exit 3, so the caller can tell that the shim did the mapping.
 *   usage: map_plain FILE PATTERN */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) return perror("open"), 1;
  struct stat st;
  if (fstat(fd, &st) != 0) return perror("fstat"), 1;
  char *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    fprintf(stderr, "mmap: %s\n", strerror(err));
    return err == ENODEV ? 3 : 1;
  }
  size_t n = strlen(argv[2]);
  memcpy(p + 8192, argv[2], n);
  if (msync(p + 8192, 4096, MS_SYNC) != 0) return perror("msync"), 1;
  return munmap(p, (size_t)st.st_size) == 0 ? 0 : 1;
}
