// SPDX-License-Identifier: BSD-3-Clause
/* Stores and checks 8-byte counters in a file, for the direct-mapping tests.
 *
 *   map_counters store  lib|plain FILE N SEED [fork]   map FILE (libpmemfs, or plain
 *        mmap+msync for the LD_PRELOAD shim), store N counters at pseudo-random 8-byte
 *        aligned offsets, persist each; with "fork", a child stores the second half
 *   map_counters check  FILE N SEED [REGION EXTENTS_FILE]   read the counters back with
 *        pread through the mount, or from the region file at the offsets that the
 *        `user.pmemfs.extents` listing in EXTENTS_FILE gives
 *   map_counters hold   FILE                         map with libpmemfs and sleep (lease holder)
 *   map_counters access FILE [rw]   open FILE O_RDONLY (rw: O_RDWR) and report, one line
 *        each, what a mapping gets: the raw lease ioctl's access, pmemfs_map's protection,
 *        pmemfs_map_prot(PROT_READ|PROT_WRITE), mmap(MAP_SHARED) with PROT_READ|PROT_WRITE
 *        and with PROT_READ (direct under the shim), and a store through pmemfs_map's
 *        mapping (in a child: "store signal=SIGSEGV" when the mapping is read-only)
 *   map_counters lease  FILE        open FILE O_RDONLY, issue the lease ioctl, print
 *        "lease ok access=r|rw" or "lease errno=NAME", then "held", and sleep holding it
 *
 * Exit status 0 when every counter is as stored; messages on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/libpmemfs.h"
#include "common/lease_protocol.h"
#include <signal.h>
#include <sys/ioctl.h>

static uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}
static uint64_t Offset(uint64_t seed, uint64_t i, uint64_t words) { return Mix(seed * 1000003 + i) % words * 8; }
static uint64_t Value(uint64_t seed, uint64_t i) { return Mix(~seed + i) | 1; }

static int Store(const char* mode, const char* path, uint64_t n, uint64_t seed, int do_fork) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return perror(path), 1;
  struct stat st;
  fstat(fd, &st);
  size_t len = st.st_size;
  char* p;
  int lib = strcmp(mode, "lib") == 0;
  if (lib) {
    p = pmemfs_map(fd, &len);
    if (!p) return fprintf(stderr, "pmemfs_map: %s (%s)\n", strerror(errno), pmemfs_errormsg()), 2;
  } else {
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return perror("mmap"), 2;
  }
  close(fd); /* the mapping keeps working: the lease has its own descriptor */
  uint64_t words = st.st_size / 8, from = 0, to = n;
  pid_t child = -1;
  if (do_fork) {  /* the child stores the first half through the inherited mapping */
    child = fork();
    if (child == 0) {
      to = n / 2;
    } else {
      int status;
      waitpid(child, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fprintf(stderr, "child failed\n"), 4;
      from = n / 2;
    }
  }
  for (uint64_t i = from; i < to; ++i) {
    uint64_t* w = (uint64_t*)(p + Offset(seed, i, words));
    *w = Value(seed, i);
    if (lib) pmemfs_persist(w, 8);
    else if (msync((void*)((uintptr_t)w & ~4095ull), 4096, MS_SYNC) != 0) return perror("msync"), 3;
  }
  if (child == 0) _exit(0);
  if (lib) pmemfs_unmap(p);
  else munmap(p, len);
  return 0;
}

/* The final value at each offset: the last store to it wins. */
static int Check(const char* path, uint64_t n, uint64_t seed, const char* region, const char* extents) {
  int fd = open(region ? region : path, O_RDONLY);
  if (fd < 0) return perror(region ? region : path), 1;
  struct stat st;
  if (stat(path, &st) != 0) return perror(path), 1;
  uint64_t words = st.st_size / 8;
  uint64_t lo[4096], ro[4096], ln[4096];
  int ne = 0;
  if (extents) {
    FILE* f = fopen(extents, "r");
    if (!f) return perror(extents), 1;
    char flags[64];
    while (ne < 4096 && fscanf(f, "%lu %lu %lu %63s", &lo[ne], &ro[ne], &ln[ne], flags) == 4) ne++;
    fclose(f);
  }
  int bad = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t off = Offset(seed, i, words), want = Value(seed, i);
    for (uint64_t j = i + 1; j < n; ++j) {
      if (Offset(seed, j, words) == off) want = Value(seed, j);
    }
    uint64_t at = off;
    if (extents) {
      int k;
      for (k = 0; k < ne && !(off >= lo[k] && off < lo[k] + ln[k]); ++k) {
      }
      if (k == ne) return fprintf(stderr, "offset %lu not in the extent list\n", off), 1;
      at = ro[k] + (off - lo[k]);
    }
    uint64_t got = 0;
    if (pread(fd, &got, 8, at) != 8 || got != want) {
      if (bad++ < 5) fprintf(stderr, "counter %lu at %lu: got %lx want %lx\n", i, off, got, want);
    }
  }
  return bad ? 5 : 0;
}

static const char* AccessName(uint32_t a) { return (a & PMEMFS_LEASE_WRITE) ? "rw" : "r"; }

static void RawLease(int fd) {
  static struct pmemfs_lease_reply reply;
  memset(&reply, 0, sizeof(reply));
  ((struct pmemfs_lease_req*)&reply)->version = PMEMFS_LEASE_VERSION;
  if (ioctl(fd, PMEMFS_IOC_LEASE, &reply) == 0) printf("lease ok access=%s\n", AccessName(reply.access));
  else printf("lease errno=%s\n", strerrorname_np(errno));
  fflush(stdout);
}

static int Access(const char* path, int rw) {
  int fd = open(path, rw ? O_RDWR : O_RDONLY);
  if (fd < 0) return perror(path), 1;
  RawLease(fd);
  size_t len = 0;
  char* p = pmemfs_map(fd, &len);
  if (p) printf("map prot=%s\n", pmemfs_mapping_prot(p) & PROT_WRITE ? "rw" : "r");
  else printf("map errno=%s\n", strerrorname_np(errno));
  char* w = pmemfs_map_prot(fd, &len, PROT_READ | PROT_WRITE);
  if (w) printf("map-rw ok\n"), pmemfs_unmap(w);
  else printf("map-rw errno=%s\n", strerrorname_np(errno));
  struct stat st;
  fstat(fd, &st);
  void* m = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m != MAP_FAILED) printf("mmap-rw ok\n"), munmap(m, st.st_size);
  else printf("mmap-rw errno=%s\n", strerrorname_np(errno));
  m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  if (m != MAP_FAILED) printf("mmap-r ok first=%d direct=%d\n", ((unsigned char*)m)[0], pmemfs_find(m, 1, NULL) != NULL), munmap(m, st.st_size);
  else printf("mmap-r errno=%s\n", strerrorname_np(errno));
  fflush(stdout);
  if (p) {
    pid_t child = fork();
    if (child == 0) {
      *(volatile char*)p = 'W';
      pmemfs_persist(p, 1);
      _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status)) printf("store signal=%s\n", sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else printf("store ok\n");
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 6 && strcmp(argv[1], "store") == 0)
    return Store(argv[2], argv[3], strtoull(argv[4], 0, 0), strtoull(argv[5], 0, 0), argc > 6);
  if (argc >= 5 && strcmp(argv[1], "check") == 0)
    return Check(argv[2], strtoull(argv[3], 0, 0), strtoull(argv[4], 0, 0), argc > 6 ? argv[5] : NULL,
                 argc > 6 ? argv[6] : NULL);
  if (argc == 3 && strcmp(argv[1], "hold") == 0) {
    int fd = open(argv[2], O_RDWR);
    size_t len;
    if (fd < 0 || !pmemfs_map(fd, &len)) return fprintf(stderr, "hold: %s\n", pmemfs_errormsg()), 2;
    printf("mapped\n");
    fflush(stdout);
    pause();
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "access") == 0) return Access(argv[2], argc > 3 && strcmp(argv[3], "rw") == 0);
  if (argc == 3 && strcmp(argv[1], "lease") == 0) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) return perror(argv[2]), 1;
    RawLease(fd);
    printf("held\n");
    fflush(stdout);
    pause();
    return 0;
  }
  fprintf(stderr, "usage: see the header of map_counters.c\n");
  return 64;
}
