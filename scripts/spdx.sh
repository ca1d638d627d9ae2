#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# SPDX license identifiers (LICENSE: BSD-3-Clause) at the top of every tracked source file.
#
#   scripts/spdx.sh           insert "SPDX-License-Identifier: BSD-3-Clause" where missing:
#                             the first line, or the second after a #! line; `//` for C and
#                             C++ (sources, headers, header templates), `#` for shell, CMake
#                             and the pkg-config template.
#                             Idempotent: a file that has an identifier is left alone.
#   scripts/spdx.sh --check   change nothing; list the files without one and exit 1 if any.
#
# "Source files" are the tracked files with these names: *.c *.cc *.h *.h.in *.pc.in *.sh
# CMakeLists.txt *.cmake, and .ci/run. Documentation, man pages, debian/ (its copyright file carries the
# license) and data files are not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: scripts/spdx.sh [--check]" >&2; exit 2 ;;
esac
readonly ID="SPDX-License-Identifier: BSD-3-Clause"

comment_for() {
  case "$1" in
    *.c | *.cc | *.h | *.h.in) echo "// $ID" ;;
    *.sh | */CMakeLists.txt | CMakeLists.txt | *.cmake | *.pc.in | .ci/run) echo "# $ID" ;;
    *) return 1 ;;
  esac
}

missing=0
while IFS= read -r -d '' f; do
  line=$(comment_for "$f") || continue
  [[ -f $f && ! -L $f ]] || continue
  # Already there: within the first three lines, in any comment style.
  if head -n 3 "$f" | grep -q "SPDX-License-Identifier:"; then continue; fi
  if ((check)); then
    echo "missing SPDX identifier: $f"
    missing=1
    continue
  fi
  tmp=$(mktemp "$f.spdx.XXXXXX")
  if [[ $(head -c 2 "$f") == "#!" ]]; then
    { head -n 1 "$f"; echo "$line"; tail -n +2 "$f"; } >"$tmp"
  else
    { echo "$line"; cat "$f"; } >"$tmp"
  fi
  chmod --reference="$f" "$tmp"
  mv "$tmp" "$f"
  echo "added: $f"
done < <(git ls-files -z -- '*.c' '*.cc' '*.h' '*.h.in' '*.pc.in' '*.sh' 'CMakeLists.txt' '*/CMakeLists.txt' '*.cmake' '.ci/run')

if ((check && missing)); then
  echo "run scripts/spdx.sh to add them" >&2
  exit 1
fi
exit 0
