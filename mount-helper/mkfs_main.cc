// mkfs.pmemfs: formats a region (a devdax device or a file) with an empty pmemfs.
#include <blkid/blkid.h>
#include <getopt.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>

#include "extent/superblock.h"
#include "pmem/pmem2_region.h"
#include "size_arg.h"

using namespace pmemfs;

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: mkfs.pmemfs [-f] [--size SIZE [--sparse]] [-N INODES] [-J JOURNAL_SIZE] [-L LABEL] REGION\n"
               "  REGION          a devdax device (/dev/daxX.Y) or a file\n"
               "  -s, --size SIZE create (or extend) REGION as a file of SIZE bytes (K, M, G, T suffixes),\n"
               "                  its space allocated\n"
               "      --sparse    with --size: leave the file sparse (space is taken as it is written)\n"
               "  -N, --inodes N  number of inodes (default: one per 16 KiB)\n"
               "  -J, --journal S journal size (default: region/256, 256 KiB..16 MiB)\n"
               "  -L, --label L   filesystem label (up to 63 bytes)\n"
               "  -f, --force     overwrite an existing pmemfs or other signature\n");
}

// The name of another filesystem or partition table found on the region, if any.
std::string OtherSignature(const std::string& path) {
  blkid_probe pr = blkid_new_probe_from_filename(path.c_str());
  if (!pr) return "";
  blkid_probe_enable_superblocks(pr, 1);
  blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
  blkid_probe_enable_partitions(pr, 1);
  std::string found;
  if (blkid_do_safeprobe(pr) == 0) {
    const char* type = nullptr;
    if (blkid_probe_lookup_value(pr, "TYPE", &type, nullptr) == 0 && type) found = type;
    else if (blkid_probe_lookup_value(pr, "PTTYPE", &type, nullptr) == 0 && type) found = std::string(type) + " partition table";
  }
  blkid_free_probe(pr);
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  static const option kLong[] = {{"size", required_argument, nullptr, 's'},
                                 {"sparse", no_argument, nullptr, 'S'},
                                 {"inodes", required_argument, nullptr, 'N'},
                                 {"journal", required_argument, nullptr, 'J'},
                                 {"label", required_argument, nullptr, 'L'},
                                 {"force", no_argument, nullptr, 'f'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  extent::MkfsOptions opts;
  std::optional<uint64_t> size;
  bool force = false, sparse = false;
  for (int c; (c = getopt_long(argc, argv, "s:N:J:L:fh", kLong, nullptr)) != -1;) {
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
        if (!n) return std::fprintf(stderr, "mkfs.pmemfs: bad journal size '%s'\n", optarg), 1;
        opts.journal_size = *n;
        break;
      }
      case 'L': opts.label = optarg; break;
      case 'f': force = true; break;
      case 'S': sparse = true; break;
      case 'h': Usage(stdout); return 0;
      default: Usage(stderr); return 1;
    }
  }
  if (optind + 1 != argc) {
    Usage(stderr);
    return 1;
  }
  std::string path = argv[optind];
  if (opts.label.size() > 63) return std::fprintf(stderr, "mkfs.pmemfs: label longer than 63 bytes\n"), 1;
  if (sparse && !size) return std::fprintf(stderr, "mkfs.pmemfs: --sparse needs --size\n"), 1;
  if (size) {
    if (Status s = pmem::CreateRegionFile(path, *size, sparse); !s.ok())
      return std::fprintf(stderr, "mkfs.pmemfs: %s: %s\n", path.c_str(), s.error().Message().c_str()), 1;
  }
  auto region = pmem::Pmem2Region::Open(path, {});
  if (!region.ok()) {
    std::fprintf(stderr, "mkfs.pmemfs: %s: %s\n", path.c_str(), region.error().Message().c_str());
    return 1;
  }
  if (!force) {
    if (auto old = extent::ReadSuperblock(**region); old.ok()) {
      std::fprintf(stderr, "mkfs.pmemfs: %s already holds a pmemfs (uuid %s); use -f to overwrite it\n",
                   path.c_str(), extent::UuidString(old->sb.uuid).c_str());
      return 1;
    }
    if (std::string other = OtherSignature(path); !other.empty()) {
      std::fprintf(stderr, "mkfs.pmemfs: %s holds a %s signature; use -f to overwrite it\n", path.c_str(),
                   other.c_str());
      return 1;
    }
  }
  if (Status s = extent::Format(**region, opts); !s.ok()) {
    std::fprintf(stderr, "mkfs.pmemfs: %s: %s\n", path.c_str(), s.error().Message().c_str());
    return 1;
  }
  auto sb = extent::ReadSuperblock(**region);
  if (!sb.ok()) return std::fprintf(stderr, "mkfs.pmemfs: verification failed\n"), 1;
  std::printf("pmemfs on %s\n  uuid     %s\n  size     %llu bytes (%llu blocks of 4 KiB)\n  inodes   %llu\n"
              "  journal  %llu bytes\n  data     from block %llu\n",
              (*region)->Describe().c_str(), extent::UuidString(sb->sb.uuid).c_str(),
              (unsigned long long)sb->sb.region_size, (unsigned long long)sb->sb.total_blocks,
              (unsigned long long)(sb->sb.inode_count - 1), (unsigned long long)sb->sb.journal_size,
              (unsigned long long)(sb->sb.data_off / 4096));
  return 0;
}
