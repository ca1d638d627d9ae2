// pmemfs: mounts a pmemfs region with FUSE.
//
//   pmemfs REGION MOUNTPOINT [-o opt[,opt...]] [-f] [-d]
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "fs/fuse_ops.h"
#include "pmem/pmem2_region.h"

using namespace pmemfs;

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: pmemfs REGION MOUNTPOINT [-o opt[,opt...]] [-f] [-d]\n"
               "  -f              stay in the foreground (log to stderr; otherwise to syslog)\n"
               "  -d              debug: foreground, log_level=debug, and libfuse's request trace\n"
               "  -o ro           mount read-only\n"
               "  -o user_immutable  let a file's owner set/clear user.pmemfs.immutable_extents\n"
               "  -o log_level=L  trace, debug, info (default), warn, error, off\n"
               "  other -o options go to FUSE (allow_other, ...); default_permissions is always on\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional, fuse_opts;
  bool foreground = false, debug = false, read_only = false, user_immutable = false;
  std::string log_level = "info";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      Usage(stdout);
      return 0;
    } else if (a == "-f") {
      foreground = true;
    } else if (a == "-d") {
      debug = foreground = true;
      log_level = "debug";
    } else if (a == "-o" || (a.rfind("-o", 0) == 0 && a.size() > 2)) {
      std::string list = a.size() > 2 ? a.substr(2) : (i + 1 < argc ? argv[++i] : "");
      if (list.empty()) return std::fprintf(stderr, "pmemfs: -o needs options\n"), 1;
      std::stringstream ss(list);
      for (std::string o; std::getline(ss, o, ',');) {
        if (o.empty()) continue;
        if (o.rfind("log_level=", 0) == 0) log_level = o.substr(10);
        else if (o == "user_immutable") user_immutable = true;
        else if (o == "ro") read_only = true, fuse_opts.push_back(o);
        else if (o == "rw") read_only = false;
        else if (o == "default_permissions" || o.rfind("fsname=", 0) == 0 || o.rfind("subtype=", 0) == 0) continue;
        else fuse_opts.push_back(o);
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "pmemfs: unknown option %s\n", a.c_str());
      Usage(stderr);
      return 1;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) {
    Usage(stderr);
    return 1;
  }
  const std::string& region_path = positional[0];
  const std::string& mountpoint = positional[1];

  auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    return std::fprintf(stderr, "pmemfs: unknown log_level '%s'\n", log_level.c_str()), 1;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("pmemfs"));
  spdlog::set_level(level);

  struct stat st {};
  if (stat(mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return std::fprintf(stderr, "pmemfs: mount point %s is not a directory\n", mountpoint.c_str()), 1;
  }
  auto region = pmem::Pmem2Region::Open(region_path, {.read_only = read_only, .lock = true});
  if (!region.ok()) {
    if (region.code() == EBUSY)
      std::fprintf(stderr, "pmemfs: %s is already in use (mounted by another pmemfs, or being checked)\n",
                   region_path.c_str());
    else
      std::fprintf(stderr, "pmemfs: %s: %s\n", region_path.c_str(), region.error().Message().c_str());
    return 1;
  }
  auto fs = fs::FileSystem::Mount(std::move(region).value(), {.read_only = read_only, .user_immutable = user_immutable});
  if (!fs.ok()) {
    if (fs.code() == ENODATA)
      std::fprintf(stderr, "pmemfs: %s holds no pmemfs filesystem; create one with: mkfs.pmemfs %s\n",
                   region_path.c_str(), region_path.c_str());
    else
      std::fprintf(stderr, "pmemfs: cannot mount %s: %s (run fsck.pmemfs %s)\n", region_path.c_str(),
                   fs.error().Message().c_str(), region_path.c_str());
    return 1;
  }

  fs::ServeOptions so;
  so.mountpoint = mountpoint;
  so.foreground = foreground;
  so.debug = debug;
  so.fuse_opts = fuse_opts;
  so.fuse_opts.push_back("default_permissions");
  so.fuse_opts.push_back("fsname=" + region_path);
  so.fuse_opts.push_back("subtype=pmemfs");
  so.on_mounted = [&] {
    if (!foreground) {
      auto logger = spdlog::syslog_logger_mt("pmemfs-syslog", "pmemfs", LOG_PID, LOG_DAEMON);
      logger->set_level(level);
      spdlog::set_default_logger(logger);
    }
  };
  int rc = fs::ServeFuse(**fs, so);
  spdlog::info("pmemfs on {} unmounted", mountpoint);
  return rc;
}
