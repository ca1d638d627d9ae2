// SPDX-License-Identifier: BSD-3-Clause
#include "fs/credentials.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace pmemfs::fs {
namespace {

// The daemon's user namespace and its ancestors, innermost first: (namespace inode,
// uid of its owner in the parent namespace). Read once.
struct NsLink {
  uint64_t ino;
  uint32_t owner;
};
const std::vector<NsLink>& OwnChain() {
  static const std::vector<NsLink> chain = [] {
    std::vector<NsLink> out;
    int fd = ::open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
    while (fd >= 0) {
      struct stat st {};
      uid_t owner = 0;
      if (::fstat(fd, &st) != 0) break;
      bool has_owner = ::ioctl(fd, NS_GET_OWNER_UID, &owner) == 0;
      out.push_back({st.st_ino, has_owner ? owner : 0});
      int parent = ::ioctl(fd, NS_GET_PARENT);  // EPERM at the initial namespace
      ::close(fd);
      fd = parent;
    }
    if (fd >= 0) ::close(fd);
    return out;
  }();
  return chain;
}

struct Status {
  uint64_t cap_eff = 0;
  uint32_t euid = 0;
  std::vector<uint32_t> groups;
  bool ok = false;
};

Status ReadStatus(uint32_t pid) {
  Status s;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("CapEff:", 0) == 0) {
      s.cap_eff = std::strtoull(line.c_str() + 7, nullptr, 16);
      s.ok = true;
    } else if (line.rfind("Uid:", 0) == 0) {
      std::istringstream ss(line.substr(4));
      uint32_t real = 0;
      ss >> real >> s.euid;
    } else if (line.rfind("Groups:", 0) == 0) {
      std::istringstream ss(line.substr(7));
      for (uint32_t g; ss >> g;) s.groups.push_back(g);
    }
  }
  return s;
}

}  // namespace

bool ProcessHasCapability(uint32_t pid, int cap) {
  struct stat st {};
  if (::stat(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), &st) != 0) return false;
  Status s = ReadStatus(pid);
  if (!s.ok) return false;
  const bool raised = cap >= 0 && cap < 64 && ((s.cap_eff >> cap) & 1);
  // cap_capable(): walking up from the mount's namespace, the caller's own namespace
  // decides by its effective set; before reaching it, a caller that owns the namespace
  // just below holds every capability there.
  const auto& chain = OwnChain();
  for (size_t i = 0; i < chain.size(); ++i) {
    if (chain[i].ino == st.st_ino) return raised || (i > 0 && chain[i - 1].owner == s.euid);
  }
  return false;  // a child (or unrelated) namespace: nothing counts here
}

bool ProcessInGroup(uint32_t pid, uint32_t gid) {
  Status s = ReadStatus(pid);
  for (uint32_t g : s.groups)
    if (g == gid) return true;
  return false;
}

}  // namespace pmemfs::fs
