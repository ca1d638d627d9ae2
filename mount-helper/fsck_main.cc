// fsck.pmemfs: checks (and with -y repairs) a pmemfs region. Exit codes as e2fsck's:
// 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error.
//
// The region is checked in place (src/fs/check.h): -n maps it read-only and never writes;
// memory grows with the metadata in use, not with the region's size.
#include <getopt.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "fs/check.h"
#include "pmem/pmem2_region.h"

using namespace pmemfs;

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: fsck.pmemfs [-n | -y] [-q] REGION\n"
               "  -n  check only, change nothing (default); a journal that needs replaying is\n"
               "      checked as a mount would replay it, without writing\n"
               "  -y  check and repair; the journal is replayed and left checkpointed\n"
               "  -q  print problems only, no progress or notes\n"
               "exit: 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool repair = false, quiet = false;
  for (int c; (c = getopt(argc, argv, "nyqfph")) != -1;) {
    switch (c) {
      case 'n': repair = false; break;
      case 'y': case 'p': repair = true; break;
      case 'q': quiet = true; break;
      case 'f': break;  // always a full check
      case 'h': Usage(stdout); return 0;
      default: Usage(stderr); return 8;
    }
  }
  if (optind + 1 != argc) {
    Usage(stderr);
    return 8;
  }
  std::string path = argv[optind];
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
  fs::CheckOptions opts;
  opts.repair = repair;
  opts.report = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
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
  if (!quiet || code != 0) {
    std::printf("%s: %llu problem%s found, %llu fixed -> %s\n", path.c_str(), (unsigned long long)r.problems,
                r.problems == 1 ? "" : "s", (unsigned long long)r.fixed,
                code == 0 ? "clean" : code == 1 ? "repaired" : code == 4 ? "ERRORS LEFT" : "operational error");
  }
  return code;
}
