// SPDX-License-Identifier: BSD-3-Clause
// pmemfs: mounts a pmemfs region with FUSE.
//
//   pmemfs REGION MOUNTPOINT [-o opt[,opt...]] [-f] [-d]
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <limits.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/version.h"
#include "fs/filesystem.h"
#include "fs/fuse_ops.h"
#include "pmem/pmem2_region.h"
#include "region_file.h"

using namespace pmemfs;

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: pmemfs REGION MOUNTPOINT [-o opt[,opt...]] [-f] [-d]\n"
               "       mount -t fuse.pmemfs REGION MOUNTPOINT [-o opt[,opt...]]\n"
               "Mounts the pmemfs filesystem on REGION (a device-dax such as /dev/dax0.0, or a\n"
               "region file) at MOUNTPOINT. Unmount with umount or fusermount3 -u.\n"
               "  -f              stay in the foreground (log to stderr; otherwise to syslog)\n"
               "  -d              debug: foreground, log_level=debug, and libfuse's request trace\n"
               "  -o ro           mount read-only\n"
               "  -o user_immutable  let a file's owner set/clear user.pmemfs.immutable_extents\n"
               "  -o noprefault   do not map the blocks in use into the daemon's page tables at mount\n"
               "  -o log_level=L  trace, debug, info (default), warn, error, off\n"
               "  -o overmount    allow MOUNTPOINT to be a mount already (stack on top of it)\n"
               "  other -o options go to FUSE (allow_other, ...); default_permissions is always on\n"
               "  -h, --help      this text;  -V, --version  the version\n"
               "See pmemfs(8).\n");
}

// A mountinfo path field with its octal escapes (\040 for a space, ...) decoded.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// "TYPE from SOURCE" of the mount whose mount point is `dir` (a canonical path), or "".
std::string MountAt(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string found;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::string id, parent, dev, root, point;
    ss >> id >> parent >> dev >> root >> point;
    if (Unescape(point) != dir) continue;
    size_t dash = line.find(" - ");
    std::istringstream rest(dash == std::string::npos ? "" : line.substr(dash + 3));
    std::string type, source;
    rest >> type >> source;
    found = type + " from " + Unescape(source);  // the last one listed is the top of the stack
  }
  return found;
}

// Refuses mount points that do not exist, are not directories, are dead FUSE mounts, or
// (without -o overmount) are mounts already. Returns the message, or "".
std::string CheckMountPoint(const std::string& mnt, bool overmount) {
  struct stat st {};
  if (::stat(mnt.c_str(), &st) != 0) {
    if (errno == ENOTCONN)
      return "mount point " + mnt + " is a dead FUSE mount (Transport endpoint is not connected); unmount it first: fusermount3 -u " + mnt;
    if (errno == ENOENT) return "mount point " + mnt + " does not exist";
    return "mount point " + mnt + ": " + std::strerror(errno);
  }
  if (!S_ISDIR(st.st_mode)) return "mount point " + mnt + " is not a directory";
  char canon[PATH_MAX];
  if (!realpath(mnt.c_str(), canon)) return "mount point " + mnt + ": " + std::strerror(errno);
  if (std::string what = MountAt(canon); !what.empty() && !overmount)
    return "mount point " + mnt + " is already a mount (" + what + "); unmount it first (fusermount3 -u " + mnt +
           "), or pass -o overmount to mount on top of it";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional, fuse_opts;
  bool foreground = false, debug = false, read_only = false, user_immutable = false, overmount = false;
  bool prefault = true;
  std::string log_level = "info";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      Usage(stdout);
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::printf("pmemfs %s\n", PMEMFS_VERSION);
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
        else if (o == "noprefault") prefault = false;
        else if (o == "overmount") overmount = true;
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

  if (std::string bad = cli::RegionPathProblem(region_path); !bad.empty())
    return std::fprintf(stderr, "pmemfs: %s\n", bad.c_str()), 1;
  if (std::string bad = CheckMountPoint(mountpoint, overmount); !bad.empty())
    return std::fprintf(stderr, "pmemfs: %s\n", bad.c_str()), 1;
  // Whoever can open the region can read and change every file: say so when that is everyone.
  std::string permission_warning;
  if (struct stat rst {}; ::stat(region_path.c_str(), &rst) == 0) permission_warning = cli::PermissionWarning(region_path, rst);
  if (!permission_warning.empty()) spdlog::warn("{}", permission_warning);
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
  bool mounted = false;  // "unmounted" is said only of a mount that happened
  so.on_mounted = [&] {
    mounted = true;
    if (!foreground) {
      auto logger = spdlog::syslog_logger_mt("pmemfs-syslog", "pmemfs", LOG_PID, LOG_DAEMON);
      logger->set_level(level);
      spdlog::set_default_logger(logger);
      if (!permission_warning.empty()) spdlog::warn("{}", permission_warning);
    }
  };
  if (prefault) (*fs)->StartPrefault();
  int rc = fs::ServeFuse(**fs, so);
  if (mounted) spdlog::info("pmemfs on {} unmounted", mountpoint);
  return rc;
}
