// SPDX-License-Identifier: BSD-3-Clause
// fsck.pmemfs (also installed as fsck.fuse.pmemfs, which fsck(8) runs for fstab entries
// of type fuse.pmemfs): checks (and with -y or -p repairs) a pmemfs region. Options and
// exit codes follow fsck(8) and e2fsck: 0 clean, 1 errors corrected, 4 errors left
// uncorrected, 8 operational error, 16 usage error.
//
// The region is checked in place (src/fs/check.h): -n maps it read-only and never writes;
// memory grows with the metadata in use, not with the region's size.
#include <getopt.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "common/version.h"
#include "extent/superblock.h"
#include "fs/check.h"
#include "pmem/pmem2_region.h"
#include "region_file.h"

using namespace pmemfs;

namespace {

constexpr int kExitUsage = 16;  // fsck(8): usage or syntax error

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: fsck.pmemfs [-n | -y | -p | -a] [-f] [-q] REGION\n"
               "Checks the pmemfs filesystem on REGION (not mounted), and repairs it with -y or -p.\n"
               "  -n  check only, change nothing (default); a journal that needs replaying is\n"
               "      checked as a mount would replay it, without writing\n"
               "  -y  check and repair; the journal is replayed and left checkpointed\n"
               "  -p, -a  preen (what fsck -A and boot-time checks pass): repair as -y, without\n"
               "      questions (fsck.pmemfs asks none), print only problems and a summary line\n"
               "  -f  force a full check (every check is full; accepted for fsck(8))\n"
               "  -q  print problems only, no progress or notes\n"
               "  -h, --help  this text;  -V, --version  the version\n"
               "exit: 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error,\n"
               "      16 usage error. See fsck.pmemfs(8).\n");
}

}  // namespace

int main(int argc, char** argv) {
  static const option kLong[] = {{"help", no_argument, nullptr, 'h'},
                                 {"version", no_argument, nullptr, 'V'},
                                 {nullptr, 0, nullptr, 0}};
  bool repair = false, quiet = false, preen = false;
  char mode = 0;  // the one of -n, -y, -p/-a given
  for (int c; (c = getopt_long(argc, argv, "nypafqhV", kLong, nullptr)) != -1;) {
    switch (c) {
      case 'n': case 'y': case 'p': case 'a': {
        const char m = c == 'a' ? 'p' : static_cast<char>(c);
        if (mode && mode != m) {
          std::fprintf(stderr, "fsck.pmemfs: only one of -n, -y and -p/-a may be given\n");
          return kExitUsage;
        }
        mode = m;
        repair = m != 'n';
        preen = m == 'p';
        break;
      }
      case 'q': quiet = true; break;
      case 'f': break;  // always a full check
      case 'h': Usage(stdout); return 0;
      case 'V': std::printf("fsck.pmemfs (pmemfs) %s\n", PMEMFS_VERSION); return 0;
      default: Usage(stderr); return kExitUsage;
    }
  }
  if (optind + 1 != argc) {
    if (optind == argc) std::fprintf(stderr, "fsck.pmemfs: no REGION given\n");
    Usage(stderr);
    return kExitUsage;
  }
  if (preen) quiet = true;
  std::string path = argv[optind];
  if (std::string bad = cli::RegionPathProblem(path); !bad.empty()) {
    std::fprintf(stderr, "fsck.pmemfs: %s\n", bad.c_str());
    return 8;
  }
  spdlog::set_level(spdlog::level::warn);  // the filesystem layer's notes (lost+found repair)
  // The lock refuses a mounted region: checking a live filesystem proves nothing.
  auto region = pmem::Pmem2Region::Open(path, {.read_only = !repair, .lock = true});
  if (!region.ok()) {
    if (region.code() == EBUSY)
      std::fprintf(stderr, "fsck.pmemfs: %s is in use (mounted?); unmount it first\n", path.c_str());
    else
      std::fprintf(stderr, "fsck.pmemfs: %s: %s\n", path.c_str(), region.error().Message().c_str());
    return 8;
  }
  // Nothing of pmemfs anywhere (primary, copies, journal, state block): there is nothing to
  // check or repair, and the fix is mkfs, not fsck. A damaged pmemfs goes on to the check.
  if (auto sb = extent::ReadSuperblock(**region); !sb.ok() && sb.code() == ENODATA) {
    std::fprintf(stderr, "fsck.pmemfs: %s holds no pmemfs filesystem (no pmemfs signature anywhere); mkfs.pmemfs creates one\n",
                 path.c_str());
    return 8;
  }
  fs::CheckOptions opts;
  opts.repair = repair;
  // Preening prefixes every line with the region: fsck -A may check several at once.
  const std::string prefix = preen ? path + ": " : "";
  opts.report = [&](const std::string& line) { std::printf("%s%s\n", prefix.c_str(), line.c_str()); };
  if (!quiet) opts.info = [](const std::string& line) { std::printf("note: %s\n", line.c_str()); };
  // Progress on a terminal only, and only once the check has taken more than a second.
  const bool tty = isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  bool shown = false;
  if (!quiet && tty) {
    opts.progress = [&](const char* phase, int pct) {
      if (std::chrono::steady_clock::now() - start < std::chrono::seconds(1)) return;
      std::fprintf(stderr, "\r%-14s %3d%%", phase, pct);
      std::fflush(stderr);
      shown = true;
    };
  }
  fs::CheckResult r = fs::Check(**region, opts);
  if (shown) std::fprintf(stderr, "\r%-20s\r", "");
  int code = r.ExitCode();
  if (!quiet || preen || code != 0) {
    std::printf("%s: %llu problem%s found, %llu fixed -> %s\n", path.c_str(), (unsigned long long)r.problems,
                r.problems == 1 ? "" : "s", (unsigned long long)r.fixed,
                code == 0 ? "clean" : code == 1 ? "repaired" : code == 4 ? "ERRORS LEFT" : "operational error");
  }
  return code;
}
