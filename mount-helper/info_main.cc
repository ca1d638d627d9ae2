// SPDX-License-Identifier: BSD-3-Clause
// pmemfs-info: prints what the superblock, the bitmaps and the journal of a pmemfs region
// say (like dumpe2fs -h or xfs_info): label, uuid, format version, sizes, free blocks and
// inodes, journal state, features, the region's mapping alignment. Changes nothing.
//
// The region is read only through a read-only mapping (a device-dax has no read()), without
// taking its lock, so a mounted region can be inspected too: its figures are then a snapshot
// of a live filesystem. Whether a process holds the region's lock (a mounted daemon, fsck,
// mkfs) is read from /proc/locks, which takes no lock itself.
#include <fcntl.h>
#include <getopt.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/version.h"
#include "extent/journal.h"
#include "extent/superblock.h"
#include "pmem/pmem2_region.h"
#include "region_file.h"

using namespace pmemfs;

namespace {

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: pmemfs-info [--json] REGION\n"
               "Prints the label, uuid, format version, sizes, free blocks and inodes, journal\n"
               "state and features of the pmemfs filesystem on REGION. Changes nothing; a\n"
               "mounted region can be inspected too (its figures are a snapshot).\n"
               "  -j, --json      one JSON object instead of text\n"
               "  -h, --help      this text;  -V, --version  the version\n"
               "exit: 0 success, 1 no readable pmemfs on REGION or another error, 2 usage error.\n"
               "See pmemfs-info(8).\n");
}

// The pid holding a lock on the file `st` names, from /proc/locks; 0 when none.
long LockHolder(const struct stat& st) {
  std::ifstream in("/proc/locks");
  for (std::string line; std::getline(in, line);) {
    // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"
    std::istringstream ss(line);
    std::string id, kind, adv, mode, dev;
    long pid = 0;
    if (!(ss >> id >> kind >> adv >> mode >> pid >> dev)) continue;
    if (id == "->") continue;  // a waiter
    unsigned maj = 0, min = 0;
    unsigned long long ino = 0;
    if (std::sscanf(dev.c_str(), "%x:%x:%llu", &maj, &min, &ino) != 3) continue;
    if (maj == major(st.st_dev) && min == minor(st.st_dev) && ino == st.st_ino) return pid;
  }
  return 0;
}

std::string Comm(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(in, s);
  return s;
}

// Set bits among [first, end) of a bitmap (bit b in byte b/8, least significant first).
uint64_t CountSet(const std::vector<uint8_t>& bm, uint64_t first, uint64_t end) {
  uint64_t n = 0;
  for (uint64_t b = first; b < end && b / 8 < bm.size();) {
    if (b % 64 == 0 && end - b >= 64 && b / 8 + 8 <= bm.size()) {
      uint64_t w;
      std::memcpy(&w, bm.data() + b / 8, 8);
      n += std::popcount(w);
      b += 64;
    } else {
      n += (bm[b / 8] >> (b % 8)) & 1;
      ++b;
    }
  }
  return n;
}

// A copy of [off, off+len) of the region as a mount would see it: the journal's pending
// transaction (an unclean shutdown) applied over the bytes on the media.
std::vector<uint8_t> AsMounted(const pmem::Region& region, uint64_t off, uint64_t len,
                               const std::vector<extent::Journal::PendingRecord>& pending) {
  std::vector<uint8_t> out(region.base() + off, region.base() + off + len);
  for (const auto& r : pending) {
    const uint64_t lo = std::max(off, r.off), hi = std::min(off + len, r.off + r.bytes.size());
    if (lo < hi) std::memcpy(out.data() + (lo - off), r.bytes.data() + (lo - r.off), hi - lo);
  }
  return out;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);  // bytes, not UTF-8: every byte survives
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  static const option kLong[] = {{"json", no_argument, nullptr, 'j'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {"version", no_argument, nullptr, 'V'},
                                 {nullptr, 0, nullptr, 0}};
  bool json = false;
  for (int c; (c = getopt_long(argc, argv, "jhV", kLong, nullptr)) != -1;) {
    switch (c) {
      case 'j': json = true; break;
      case 'h': Usage(stdout); return 0;
      case 'V': std::printf("pmemfs-info (pmemfs) %s\n", PMEMFS_VERSION); return 0;
      default: Usage(stderr); return 2;
    }
  }
  if (optind + 1 != argc) {
    Usage(stderr);
    return 2;
  }
  const std::string path = argv[optind];
  // Notes of the layers below (a damaged superblock) go to stderr, never into the output.
  spdlog::set_default_logger(spdlog::stderr_color_st("pmemfs-info"));
  spdlog::set_level(spdlog::level::warn);
  auto fail = [&](const std::string& msg) {
    std::fprintf(stderr, "pmemfs-info: %s\n", msg.c_str());
    return 1;
  };
  if (std::string bad = cli::RegionPathProblem(path); !bad.empty()) return fail(bad);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail(path + ": " + std::strerror(errno));
  const long holder = LockHolder(st);

  auto opened = pmem::Pmem2Region::Open(path, {.read_only = true, .lock = false});
  if (!opened.ok()) return fail(path + ": " + opened.error().Message());
  pmem::Pmem2Region& region = **opened;
  // Holes of a sparse region file are not read (reading one through a shared mapping of a
  // tmpfs file would allocate it); only lseek(SEEK_DATA) on a descriptor of its own.
  int probe_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  extent::HoleProbe probe = probe_fd >= 0 ? cli::HoleProbeFor(probe_fd, st) : extent::HoleProbe{};
  auto loaded = extent::ReadSuperblock(region, probe);
  if (probe_fd >= 0) ::close(probe_fd);
  if (!loaded.ok()) {
    if (loaded.code() == ENODATA) return fail(path + " holds no pmemfs filesystem (mkfs.pmemfs creates one)");
    return fail(path + ": no valid superblock (" + loaded.error().Message() + "); run fsck.pmemfs " + path);
  }
  const format::Superblock& sb = loaded->sb;

  // The journal: what a mount would replay. A mounted filesystem's log always holds its
  // last transaction (it is checkpointed at unmount), so it is not "needing replay" then.
  extent::Journal journal(region, sb);
  auto pending = journal.Pending();
  std::string journal_state;
  std::vector<extent::Journal::PendingRecord> overlay;
  if (!pending.ok()) {
    journal_state = "malformed: " + pending.error().Message() + " (a mount refuses it; fsck.pmemfs -y discards it)";
  } else if (pending->empty()) {
    journal_state = "clean";
  } else if (holder) {
    journal_state = "live (the filesystem is in use)";
  } else {
    overlay = *pending;
    journal_state = "needs replay (transaction " + std::to_string(journal.seq()) + ", " + std::to_string(pending->size()) +
                    " records, left by an unclean shutdown; the next mount or fsck.pmemfs -y replays it)";
  }

  const auto ibm = AsMounted(region, sb.inode_bitmap_off, (sb.inode_count + 7) / 8, overlay);
  const auto bbm = AsMounted(region, sb.block_bitmap_off, (sb.total_blocks + 7) / 8, overlay);
  const uint64_t inodes = sb.inode_count - 1;  // slot 0 is never an inode
  const uint64_t inodes_used = CountSet(ibm, 1, sb.inode_count);
  const uint64_t blocks_used = CountSet(bbm, 0, sb.total_blocks);
  const uint64_t metadata_blocks = sb.data_off / format::kBlockSize + 1;  // + the backup superblock
  const uint64_t data_blocks = sb.total_blocks - metadata_blocks;

  char label[sizeof(sb.label) + 1] = {};
  std::memcpy(label, sb.label, sizeof(sb.label));
  char when[64] = "unknown";
  time_t t = static_cast<time_t>(sb.mkfs_time);
  if (struct tm tm {}; gmtime_r(&t, &tm)) std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const char* sb_source = loaded->source == extent::SuperblockSource::kPrimary ? "primary"
                          : loaded->source == extent::SuperblockSource::kCopy  ? "copy in block 1 (the primary is damaged: run fsck.pmemfs -y)"
                                                                               : "backup (the primary is damaged: run fsck.pmemfs -y)";
  // The pid in /proc/locks is the locker's: a daemon that went to the background has
  // another, so the pid is shown only while it still names a process.
  std::string comm = holder ? Comm(holder) : "";
  std::string in_use = !holder ? "no"
                       : comm.empty() ? "yes (mounted, or being checked or formatted)"
                                      : "yes, by pid " + std::to_string(holder) + " (" + comm + ")";
  auto features = [](uint64_t v) { return v ? Hex(v) : std::string("none"); };
  const std::string version = std::to_string(sb.major) + "." + std::to_string(sb.minor);
  const std::string uuid = extent::UuidString(sb.uuid);

  if (json) {
    auto u = [](uint64_t v) { return std::to_string(v); };
    std::printf(
        "{\"region\": %s, \"label\": %s, \"uuid\": \"%s\", \"format_version\": \"%s\", \"created\": \"%s\",\n"
        " \"region_size\": %s, \"filesystem_size\": %s, \"block_size\": %s, \"alignment\": %s, \"granularity\": \"%s\",\n"
        " \"blocks\": {\"total\": %s, \"data\": %s, \"free\": %s},\n"
        " \"inodes\": {\"total\": %s, \"used\": %s, \"free\": %s},\n"
        " \"journal\": {\"size\": %s, \"state\": \"%s\", \"detail\": %s},\n"
        " \"features\": {\"compat\": %s, \"incompat\": %s, \"ro_compat\": %s},\n"
        " \"superblock\": \"%s\", \"in_use\": %s}\n",
        JsonString(path).c_str(), JsonString(label).c_str(), uuid.c_str(), version.c_str(), when, u(region.size()).c_str(),
        u(sb.region_size).c_str(), u(sb.block_size).c_str(), u(region.alignment()).c_str(),
        pmem::GranularityName(region.granularity()), u(sb.total_blocks).c_str(), u(data_blocks).c_str(),
        u(sb.total_blocks - blocks_used).c_str(), u(inodes).c_str(), u(inodes_used).c_str(),
        u(inodes - inodes_used).c_str(), u(sb.journal_size).c_str(),
        !pending.ok() ? "malformed" : pending->empty() ? "clean" : holder ? "live" : "needs_replay",
        JsonString(journal_state).c_str(), u(sb.compat).c_str(), u(sb.incompat).c_str(), u(sb.ro_compat).c_str(),
        loaded->source == extent::SuperblockSource::kPrimary ? "primary"
        : loaded->source == extent::SuperblockSource::kCopy  ? "copy"
                                                             : "backup",
        holder ? "true" : "false");
    return 0;
  }
  auto row = [](const char* k, const std::string& v) { std::printf("%-18s %s\n", k, v.c_str()); };
  auto bytes = [](uint64_t v) {
    char buf[64];
    if (v >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%" PRIu64 " bytes (%.1f GiB)", v, v / double(1ull << 30));
    else if (v < (1ull << 20)) std::snprintf(buf, sizeof buf, "%" PRIu64 " bytes (%.0f KiB)", v, v / 1024.0);
    else std::snprintf(buf, sizeof buf, "%" PRIu64 " bytes (%.1f MiB)", v, v / double(1ull << 20));
    return std::string(buf);
  };
  row("region:", region.Describe());
  row("label:", label[0] ? label : "<none>");
  row("uuid:", uuid);
  row("format version:", version);
  row("created:", when);
  row("region size:", bytes(region.size()));
  row("filesystem size:", bytes(sb.region_size));
  row("block size:", std::to_string(sb.block_size));
  row("alignment:", std::to_string(region.alignment()) + " (mapping alignment; flush granularity: " +
                        pmem::GranularityName(region.granularity()) + ")");
  row("blocks:", std::to_string(sb.total_blocks) + " total, " + std::to_string(data_blocks) + " for data, " +
                     std::to_string(sb.total_blocks - blocks_used) + " free");
  row("inodes:", std::to_string(inodes) + " total, " + std::to_string(inodes_used) + " used, " +
                     std::to_string(inodes - inodes_used) + " free");
  row("journal:", bytes(sb.journal_size) + ", " + journal_state);
  row("features:", "compat " + features(sb.compat) + ", incompat " + features(sb.incompat) + ", ro_compat " +
                       features(sb.ro_compat));
  row("superblock:", sb_source);
  row("in use:", in_use);
  return 0;
}
