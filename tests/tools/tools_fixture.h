// SPDX-License-Identifier: BSD-3-Clause
// Helpers for the command tests: a region file's observable state (size, allocated
// blocks, content checksum), to show that a refused command changed nothing.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "common/crc32c.h"
#include "mount/mount_fixture.h"

namespace pmemfs::testing {

struct FileState {
  bool exists = false;
  uint64_t size = 0;
  uint64_t blocks = 0;  // st_blocks
  uint32_t crc = 0;     // of the whole content
  mode_t mode = 0;
  bool operator==(const FileState&) const = default;
};

inline FileState StateOf(const std::string& path) {
  FileState s;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return s;
  s.exists = true;
  s.size = st.st_size;
  s.blocks = st.st_blocks;
  s.mode = st.st_mode;
  // read(), not a mapping: reading a hole of a tmpfs file allocates nothing this way, so
  // st_blocks stays as it was.
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return s;
  std::string buf(1 << 20, '\0');
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) s.crc = Crc32c(buf.data(), n, s.crc);
  ::close(fd);
  return s;
}

inline std::ostream& operator<<(std::ostream& os, const FileState& s) {
  return os << (s.exists ? "" : "(missing) ") << "size " << s.size << " blocks " << s.blocks << " crc " << s.crc
            << " mode " << std::oct << s.mode << std::dec;
}

}  // namespace pmemfs::testing
