// SPDX-License-Identifier: BSD-3-Clause
// mkfs.pmemfs: formats a region (a devdax device or a file) with an empty pmemfs.
//
// Everything is decided before anything is touched: the options and the whole layout are
// checked for the final size, the region is locked (no mounted region is ever formatted)
// and its first blocks are read through the mapping for signatures. A refusal leaves the
// region exactly as it was; a file that --size created is removed again on failure.
#include <fcntl.h>
#include <getopt.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "common/version.h"
#include "extent/superblock.h"
#include "pmem/pmem2_region.h"
#include "region_file.h"
#include "size_arg.h"

using namespace pmemfs;

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: mkfs.pmemfs [-f] [--size SIZE [--sparse]] [-N INODES] [-J JOURNAL_SIZE] [-L LABEL] REGION\n"
               "Creates an empty pmemfs filesystem on REGION.\n"
               "  REGION          a devdax device (/dev/daxX.Y) or a file\n"
               "  -s, --size SIZE create REGION as a file of SIZE bytes (K, M, G, T suffixes), or extend\n"
               "                  the existing file to SIZE; its space is allocated\n"
               "      --sparse    with --size: leave the file sparse (space is taken as it is written)\n"
               "  -N, --inodes N  number of inodes (default: one per 16 KiB; at least %llu)\n"
               "  -J, --journal S journal size (default: region/256, 256 KiB..16 MiB; at least 256 KiB)\n"
               "  -L, --label L   filesystem label (up to 63 bytes)\n"
               "  -f, --force     overwrite an existing pmemfs or other signature\n"
               "  -h, --help      this text;  -V, --version  the version\n"
               "See mkfs.pmemfs(8).\n",
               static_cast<unsigned long long>(extent::kMinInodes));
}

int Fail(const std::string& path, const std::string& msg) {
  std::fprintf(stderr, "mkfs.pmemfs: %s: %s\n", path.c_str(), msg.c_str());
  return 1;
}

// An exclusive lock on the region for the whole run, on a descriptor of its own (the
// region mappings below are opened without locking): a mounted region is never formatted.
struct RegionLock {
  int fd = -1;  // also answers SEEK_DATA for the hole probe; never read or written
  ~RegionLock() {
    if (fd >= 0) ::close(fd);
  }
  Status Take(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Err(errno, "open region");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      return Err(errno == EWOULDBLOCK ? EBUSY : errno, "region is in use (mounted, or being checked); unmount it first");
    }
    return Ok();
  }
};

}  // namespace

int main(int argc, char** argv) {
  static const option kLong[] = {{"size", required_argument, nullptr, 's'},
                                 {"sparse", no_argument, nullptr, 'S'},
                                 {"inodes", required_argument, nullptr, 'N'},
                                 {"journal", required_argument, nullptr, 'J'},
                                 {"label", required_argument, nullptr, 'L'},
                                 {"force", no_argument, nullptr, 'f'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {"version", no_argument, nullptr, 'V'},
                                 {nullptr, 0, nullptr, 0}};
  extent::MkfsOptions opts;
  std::optional<uint64_t> size;
  bool force = false, sparse = false;
  for (int c; (c = getopt_long(argc, argv, "s:N:J:L:fhV", kLong, nullptr)) != -1;) {
    switch (c) {
      case 's':
        size = cli::ParseSize(optarg);
        if (!size) return std::fprintf(stderr, "mkfs.pmemfs: bad size '%s'\n", optarg), 1;
        break;
      case 'N': {
        auto n = cli::ParseSize(optarg);
        if (!n || *n == 0) return std::fprintf(stderr, "mkfs.pmemfs: bad inode count '%s'\n", optarg), 1;
        opts.inode_count = *n;
        break;
      }
      case 'J': {
        auto n = cli::ParseSize(optarg);
        if (!n || *n == 0) return std::fprintf(stderr, "mkfs.pmemfs: bad journal size '%s'\n", optarg), 1;
        opts.journal_size = *n;
        break;
      }
      case 'L': opts.label = optarg; break;
      case 'f': force = true; break;
      case 'S': sparse = true; break;
      case 'h': Usage(stdout); return 0;
      case 'V': std::printf("mkfs.pmemfs (pmemfs) %s\n", PMEMFS_VERSION); return 0;
      default: Usage(stderr); return 1;
    }
  }
  if (optind + 1 != argc) {
    Usage(stderr);
    return 1;
  }
  const std::string path = argv[optind];
  if (opts.label.size() > 63) return std::fprintf(stderr, "mkfs.pmemfs: label longer than 63 bytes\n"), 1;
  if (sparse && !size) return std::fprintf(stderr, "mkfs.pmemfs: --sparse needs --size\n"), 1;

  if (std::string bad = cli::RegionPathProblem(path, /*for_mkfs=*/true); !bad.empty())
    return std::fprintf(stderr, "mkfs.pmemfs: %s\n", bad.c_str()), 1;
  // What is there now.
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Fail(path, std::strerror(errno));
  if (!exists && !size) return Fail(path, "does not exist (--size SIZE creates a region file)");
  if (exists && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
    return Fail(path, "is neither a regular file nor a devdax character device");
  if (size) {
    if (Status s = pmem::CheckFileOpsAllowed(path); !s.ok()) return Fail(path, s.error().Message());
  }
  if (exists && size && !S_ISREG(st.st_mode)) return Fail(path, "--size applies to regular files only");
  if (exists && size && static_cast<uint64_t>(st.st_size) > *size)
    return Fail(path, "is already " + std::to_string(st.st_size) + " bytes; --size cannot shrink a region");

  RegionLock lock;
  if (exists) {
    if (Status s = lock.Take(path); !s.ok()) return Fail(path, s.error().Message());
  }
  // The final size and the whole layout, checked before anything is written.
  uint64_t target = size ? *size : static_cast<uint64_t>(st.st_size);
  const bool has_bytes = exists && (S_ISCHR(st.st_mode) || st.st_size > 0);
  if (has_bytes) {
    auto old = pmem::Pmem2Region::Open(path, {.read_only = true, .lock = false});
    if (!old.ok()) return Fail(path, old.error().Message());
    if (S_ISCHR(st.st_mode)) target = (*old)->size();
    if (auto layout = extent::ComputeLayout(target, opts); !layout.ok()) return Fail(path, layout.error().context);
    std::string sig = cli::FindSignature(**old, cli::HoleProbeFor(lock.fd, st));
    if (!sig.empty() && !force) return Fail(path, "holds a " + sig + " signature; use -f to overwrite it");
  } else if (auto layout = extent::ComputeLayout(target, opts); !layout.ok()) {
    return Fail(path, layout.error().context);
  }
  if (exists) {
    if (std::string w = cli::PermissionWarning(path, st); !w.empty()) std::fprintf(stderr, "mkfs.pmemfs: warning: %s\n", w.c_str());
  }

  if (size) {
    if (Status s = cli::CreateOrExtendRegionFile(path, *size, sparse); !s.ok()) return Fail(path, s.error().Message());
    if (!exists) {
      if (Status s = lock.Take(path); !s.ok()) {
        ::unlink(path.c_str());
        return Fail(path, s.error().Message());
      }
    }
  }
  auto region = pmem::Pmem2Region::Open(path, {.read_only = false, .lock = false});
  if (!region.ok()) {
    if (!exists) ::unlink(path.c_str());
    return Fail(path, region.error().Message());
  }
  if (Status s = extent::Format(**region, opts); !s.ok()) return Fail(path, s.error().Message());
  auto sb = extent::ReadSuperblock(**region);
  if (!sb.ok()) return Fail(path, "verification failed: " + sb.error().Message());
  std::printf("pmemfs on %s\n  uuid     %s\n  size     %llu bytes (%llu blocks of 4 KiB)\n  inodes   %llu\n"
              "  journal  %llu bytes\n  data     from block %llu\n",
              (*region)->Describe().c_str(), extent::UuidString(sb->sb.uuid).c_str(),
              (unsigned long long)sb->sb.region_size, (unsigned long long)sb->sb.total_blocks,
              (unsigned long long)(sb->sb.inode_count - 1), (unsigned long long)sb->sb.journal_size,
              (unsigned long long)(sb->sb.data_off / 4096));
  if (!opts.label.empty()) std::printf("  label    %s\n", opts.label.c_str());
  return 0;
}
