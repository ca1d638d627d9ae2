# SPDX-License-Identifier: BSD-3-Clause
# Sourced by scripts/test.sh and packaging/ci-package.sh.
# teardown_under DIR: stops the pmemfs daemons serving a region under DIR (by the region
# path on their command line), then detaches every mount under DIR, deepest first. A test
# binary killed outright leaves its daemons to the kernel's PR_SET_PDEATHSIG; this is the
# second line. Never fails.
teardown_under() {
  local dir=$1 p m
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/exe" 2>/dev/null) == */pmemfs ]] || continue
    tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -q "^$dir/" && kill "${p#/proc/}" 2>/dev/null
  done
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  return 0
}
