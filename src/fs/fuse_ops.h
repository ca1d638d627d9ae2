// SPDX-License-Identifier: BSD-3-Clause
// The FUSE adapter: serves a FileSystem through the libfuse3 low-level API. The only file
// of pmemfs that sees <fuse_lowlevel.h> is fuse_ops.cc.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fs/filesystem.h"

namespace pmemfs::fs {

struct ServeOptions {
  std::string mountpoint;
  std::vector<std::string> fuse_opts;  // passed to the kernel/libfuse as -o (fsname, ro, allow_other, ...)
  bool foreground = false;
  bool debug = false;                  // libfuse request tracing
  // Called after the mount succeeded and (unless foreground) the process daemonised.
  std::function<void()> on_mounted;
};

// Mounts, serves requests on several threads until unmounted or signalled (SIGTERM,
// SIGINT, SIGHUP), and unmounts. Returns 0 on a clean exit.
int ServeFuse(FileSystem& fs, const ServeOptions& opts);

}  // namespace pmemfs::fs
