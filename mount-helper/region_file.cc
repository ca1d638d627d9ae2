// SPDX-License-Identifier: BSD-3-Clause
#include "region_file.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "extent/superblock.h"

namespace pmemfs::cli {

namespace {

// famfs (cxl-micron-reskit/famfs, famfs_meta.h): the superblock at offset 0 starts with a
// 64-bit magic, and the metadata log at 2 MiB with its own.
constexpr uint64_t kFamfsSuperMagic = 0x87b282ff;
constexpr uint64_t kFamfsLogOffset = 2ull << 20;
constexpr uint64_t kFamfsLogMagic = 0xbadcafef00dull;

// The holes of [0, size) of an open file, as (offset, length).
std::vector<std::pair<off_t, off_t>> Holes(int fd, off_t size) {
  std::vector<std::pair<off_t, off_t>> holes;
  for (off_t pos = 0; pos < size;) {
    off_t hole = lseek(fd, pos, SEEK_HOLE);
    if (hole < 0 || hole >= size) break;
    off_t data = lseek(fd, hole, SEEK_DATA);
    off_t end = data < 0 || data > size ? size : data;
    holes.emplace_back(hole, end - hole);
    pos = end;
  }
  return holes;
}

}  // namespace

Status CreateOrExtendRegionFile(const std::string& path, uint64_t size, bool sparse) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const bool created = fd >= 0;
  if (!created && errno == EEXIST) fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Err(errno, "create region file");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Err(EINVAL, "--size applies to regular files only");
  }
  const off_t old_size = st.st_size;
  const auto old_holes = created ? std::vector<std::pair<off_t, off_t>>{} : Holes(fd, old_size);
  Status s;
  if (static_cast<uint64_t>(old_size) < size && ftruncate(fd, static_cast<off_t>(size)) != 0) {
    s = Err(errno, "size region file");
  } else if (!sparse && fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0 && errno != EOPNOTSUPP) {
    s = Err(errno, "allocate region file (--sparse creates it without allocating)");
  }
  if (!s.ok() && !created) {
    // Back to the file it was: its size, and no space allocated where it had holes.
    if (ftruncate(fd, old_size) != 0) s = Err(errno, "restore the region file's size");
    for (const auto& [off, len] : old_holes) (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
  }
  ::close(fd);
  if (!s.ok() && created) ::unlink(path.c_str());
  return s;
}

bool IsDevdax(dev_t rdev) {
  const std::string link = "/sys/dev/char/" + std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev)) + "/subsystem";
  char target[PATH_MAX];
  if (!realpath(link.c_str(), target)) return false;
  const std::string t = target;
  return t.size() >= 4 && t.compare(t.size() - 4, 4, "/dax") == 0;
}

std::string RegionPathProblem(const std::string& path, bool for_mkfs) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return for_mkfs ? "" : path + " does not exist (a region is a device-dax such as /dev/dax0.0, or a file made by mkfs.pmemfs --size)";
    return path + ": " + std::strerror(errno);
  }
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISCHR(st.st_mode) && IsDevdax(st.st_rdev)) return "";
  const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISCHR(st.st_mode)  ? "a character device that is not a device-dax"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a FIFO"
                                            : "not a regular file";
  std::string msg = path + " is " + what + "; a region is a device-dax (/dev/daxX.Y, made by ndctl create-namespace --mode=devdax) or a regular file";
  if (S_ISBLK(st.st_mode)) msg += " (for an fsdax namespace /dev/pmemN: make a filesystem on it, mount it with -o dax, and create a region file there)";
  return msg;
}

std::string PermissionWarning(const std::string& path, const struct stat& st) {
  const bool r = st.st_mode & S_IROTH, w = st.st_mode & S_IWOTH;
  if (!r && !w) return "";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  return path + " is " + (r && w ? "readable and writable" : r ? "readable" : "writable") +
         " by every user (mode " + mode + "): whoever can open the region can " +
         (r && w ? "read and change" : r ? "read" : "change") +
         " every file in the filesystem; restrict it with: chmod o-rw " + path;
}

extent::HoleProbe HoleProbeFor(int fd, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return {};
  return [fd](uint64_t off) { return lseek(fd, static_cast<off_t>(off), SEEK_DATA) == static_cast<off_t>(off); };
}

std::string FindSignature(const pmem::Region& region, const extent::HoleProbe& readable) {
  if (auto sb = extent::ReadSuperblock(region, readable); sb.ok())
    return "pmemfs (uuid " + extent::UuidString(sb->sb.uuid) + ")";
  if (extent::HasPmemfsSignature(region, readable)) return "damaged pmemfs (fsck.pmemfs may repair it)";
  auto u64 = [&](uint64_t off) {
    uint64_t v = 0;
    if (region.Contains(off, sizeof v) && (!readable || readable(off))) std::memcpy(&v, region.base() + off, sizeof v);
    return v;
  };
  if (u64(0) == kFamfsSuperMagic) return "famfs superblock";
  if (u64(kFamfsLogOffset) == kFamfsLogMagic) return "famfs log";
  return BlkidSignature(region, readable);
}

std::string BlkidSignature(const pmem::Region& region, const extent::HoleProbe& readable) {
  // libblkid probes with read() on a descriptor; a region is read only through its mapping
  // (a device-dax has no read()). So libblkid gets a sparse in-memory file of the region's
  // size holding copies of its first and last kProbeSpan bytes, where every signature it
  // knows lives (superblocks near the start, GPT and RAID copies at the end); holes of a
  // sparse region file are left unread, as zeros.
  constexpr uint64_t kProbeSpan = 1ull << 20;
  int fd = memfd_create("pmemfs-signature-probe", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(region.size())) != 0) {
    if (fd >= 0) ::close(fd);
    return "";
  }
  auto copy = [&](uint64_t from, uint64_t to) {
    for (uint64_t off = from & ~(format::kBlockSize - 1); off < to; off += format::kBlockSize) {
      uint64_t n = std::min<uint64_t>(format::kBlockSize, region.size() - off);
      if ((!readable || readable(off)) && pwrite(fd, region.base() + off, n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
        return false;
    }
    return true;
  };
  const uint64_t head = std::min(kProbeSpan, region.size());
  const uint64_t tail = region.size() > kProbeSpan ? std::max(head, region.size() - kProbeSpan) : region.size();
  std::string found;
  if (copy(0, head) && copy(tail, region.size())) {
    blkid_probe pr = blkid_new_probe();
    if (pr && blkid_probe_set_device(pr, fd, 0, static_cast<blkid_loff_t>(region.size())) == 0) {
      blkid_probe_enable_superblocks(pr, 1);
      blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
      blkid_probe_enable_partitions(pr, 1);
      if (blkid_do_safeprobe(pr) == 0) {
        const char* type = nullptr;
        if (blkid_probe_lookup_value(pr, "TYPE", &type, nullptr) == 0 && type) found = type;
        else if (blkid_probe_lookup_value(pr, "PTTYPE", &type, nullptr) == 0 && type)
          found = std::string(type) + " partition table";
      }
    }
    if (pr) blkid_free_probe(pr);
  }
  ::close(fd);
  return found;
}

}  // namespace pmemfs::cli
