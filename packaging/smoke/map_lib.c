// SPDX-License-Identifier: BSD-3-Clause
/* Smoke test of the installed libpmemfs (built with pkg-config against libpmemfs-dev):
 * maps FILE (a flagged pmemfs file) through pmemfs_map_prot, stores a pattern at offset
 * 4096, makes it durable with pmemfs_persist, unmaps. The caller checks the bytes through
 * the mount.   usage: map_lib FILE PATTERN */
#include <fcntl.h>
#include <libpmemfs.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) return perror("open"), 1;
  size_t len = 0;
  char *p = pmemfs_map_prot(fd, &len, PROT_READ | PROT_WRITE);
  if (!p) return fprintf(stderr, "pmemfs_map_prot: %s\n", pmemfs_errormsg()), 1;
  close(fd);
  size_t n = strlen(argv[2]);
  if (len < 4096 + n) return fprintf(stderr, "mapping too short\n"), 1;
  memcpy(p + 4096, argv[2], n);
  pmemfs_persist(p + 4096, n);
  if (pmemfs_mapping_prot(p) != (PROT_READ | PROT_WRITE)) return fprintf(stderr, "not writable\n"), 1;
  return pmemfs_unmap(p) == 0 ? 0 : 1;
}
