// fsck.pmemfs: checks (and with -y repairs) a pmemfs region. Exit codes as e2fsck's:
// 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error.
#include <getopt.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/check.h"
#include "pmem/dram_region.h"
#include "pmem/pmem2_region.h"

using namespace pmemfs;

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: fsck.pmemfs [-n | -y] [-q] REGION\n"
               "  -n  check only, change nothing (default); a journal that needs replaying is\n"
               "      replayed into a private copy of the region\n"
               "  -y  check and repair what can be repaired safely\n"
               "  -q  print problems only, no progress\n"
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
  // The exclusive lock refuses a mounted region: checking a live filesystem proves nothing.
  auto region = pmem::Pmem2Region::Open(path, {.read_only = !repair, .lock = true});
  if (!region.ok()) {
    if (region.code() == EBUSY)
      std::fprintf(stderr, "fsck.pmemfs: %s is in use (mounted?); unmount it first\n", path.c_str());
    else
      std::fprintf(stderr, "fsck.pmemfs: %s: %s\n", path.c_str(), region.error().Message().c_str());
    return 8;
  }
  pmem::Region* target = region->get();
  std::unique_ptr<pmem::DramRegion> copy;
  if (!repair) {
    // Check a private copy: the journal may need replaying, and -n writes nothing.
    copy = std::make_unique<pmem::DramRegion>((*region)->size());
    std::memcpy(copy->base(), (*region)->base(), (*region)->size());
    target = copy.get();
  }
  fs::CheckOptions opts;
  opts.repair = repair;
  opts.report = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  bool tty = isatty(STDERR_FILENO);
  if (!quiet) {
    opts.progress = [tty](const char* phase, int pct) {
      if (tty) std::fprintf(stderr, "\r%s: %3d%%", phase, pct), std::fflush(stderr);
      else if (pct % 10 == 0) std::fprintf(stderr, "%s: %d%%\n", phase, pct);
    };
  }
  fs::CheckResult r = fs::Check(*target, opts);
  if (!quiet && tty) std::fprintf(stderr, "\r");
  int code = r.ExitCode();
  if (!quiet || code != 0) {
    std::printf("%s: %llu problem%s found, %llu fixed -> %s\n", path.c_str(), (unsigned long long)r.problems,
                r.problems == 1 ? "" : "s", (unsigned long long)r.fixed,
                code == 0 ? "clean" : code == 1 ? "repaired" : code == 4 ? "ERRORS LEFT" : "operational error");
  }
  return code;
}
