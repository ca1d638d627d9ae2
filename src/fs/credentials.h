// SPDX-License-Identifier: BSD-3-Clause
// Credentials of the process behind a request, as the kernel would judge them for this
// mount: capabilities count only in the user namespace that owns the mount (the daemon's,
// the initial one for a root mount) or in an ancestor of it, as capable()/ns_capable()
// decide; a process in a child namespace (`unshare -r`) holds none, whatever its CapEff
// says. Read from /proc/<pid>/ on demand: only operations that need a privileged decision
// pay for it.
//
// Thread-safe. A process that has gone is judged unprivileged and in no group but its own.
#pragma once

#include <cstdint>

namespace pmemfs::fs {

// Whether process `pid` holds capability `cap` (CAP_*) with respect to this daemon's user
// namespace.
bool ProcessHasCapability(uint32_t pid, int cap);

// Whether `gid` is among process `pid`'s supplementary groups (the filesystem gid, which
// the request carries, is compared by the caller).
bool ProcessInGroup(uint32_t pid, uint32_t gid);

}  // namespace pmemfs::fs
