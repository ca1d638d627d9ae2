// SPDX-License-Identifier: BSD-3-Clause
#include "crash/crash_driver.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <sstream>

#include "common/crc32c.h"
#include "extent/superblock.h"
#include "fs/check.h"
#include "pmem/dram_region.h"

namespace pmemfs::crash {
namespace {

void Walk(fs::FileSystem& fs, uint64_t dir, const std::string& path, const std::string& tearable,
          std::ostringstream& out, std::map<std::string, std::string>* contents) {
  std::vector<std::string> names;
  Status s = fs.ReadDir(dir, 0, false, [&](std::string_view name, const fs::Entry&, uint64_t) {
    if (name != "." && name != "..") names.emplace_back(name);
    return true;
  });
  if (!s.ok()) {
    out << path << ": readdir failed: " << s.error().Message() << "\n";
    return;
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string p = path + "/" + name;
    auto e = fs.Lookup(dir, name);
    if (!e.ok()) {
      out << p << ": lookup failed: " << e.error().Message() << "\n";
      continue;
    }
    const struct stat& st = e->attr;
    out << p << " mode=" << std::oct << st.st_mode << std::dec << " uid=" << st.st_uid << " gid=" << st.st_gid
        << " nlink=" << st.st_nlink << " size=" << st.st_size << " mtime=" << st.st_mtim.tv_sec << "."
        << st.st_mtim.tv_nsec << " ctime=" << st.st_ctim.tv_sec << "." << st.st_ctim.tv_nsec;
    auto xattrs = fs.ListXattr(e->ino);
    if (xattrs.ok()) {
      std::vector<std::string> list = *xattrs;
      std::sort(list.begin(), list.end());
      for (const std::string& x : list) {
        auto v = fs.GetXattr(e->ino, x);
        out << " x:" << x << "=" << (v.ok() ? *v : "<" + v.error().Message() + ">");
      }
    }
    if (S_ISREG(st.st_mode)) {
      auto flag = fs.GetXattr(e->ino, "user.pmemfs.immutable_extents");
      out << " immutable=" << (flag.ok() ? *flag : "?");
      std::string data;
      Status rs = fs.Read(e->ino, 0, st.st_size, [&](const std::vector<fs::FileSystem::Piece>& pieces) {
        for (const auto& piece : pieces) {
          if (piece.data) data.append(static_cast<const char*>(piece.data), piece.len);
          else data.append(piece.len, '\0');
        }
      });
      if (!rs.ok()) out << " read-failed";
      if (p != tearable) out << " crc=" << Crc32c(data.data(), data.size());
      if (contents) (*contents)[p] = std::move(data);
    } else if (S_ISLNK(st.st_mode)) {
      auto t = fs.Readlink(e->ino);
      out << " -> " << (t.ok() ? *t : "?");
    }
    out << "\n";
    if (S_ISDIR(st.st_mode)) Walk(fs, e->ino, p, tearable, out, contents);
  }
}

std::string State(fs::FileSystem& fs, const std::string& tearable, std::map<std::string, std::string>* contents) {
  std::ostringstream out;
  Walk(fs, format::kRootIno, "", tearable, out, contents);
  return out.str();
}

// fsck on `region`; returns its report lines (empty when clean).
std::string Fsck(pmem::Region& region) {
  std::string report;
  fs::CheckOptions co;
  co.report = [&](const std::string& line) { report += "    " + line + "\n"; };
  fs::CheckResult r = fs::Check(region, co);
  if (r.ExitCode() != 0 && report.empty()) report = "    fsck exit code " + std::to_string(r.ExitCode()) + "\n";
  return report;
}

// The byte-wise tear rule: every byte of `got` is the pre or the post byte at its place.
bool TornBetween(const std::string& got, const std::string& pre, const std::string& post) {
  if (got.size() != pre.size() && got.size() != post.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    bool from_pre = i < pre.size() && got[i] == pre[i];
    bool from_post = i < post.size() && got[i] == post[i];
    if (!from_pre && !from_post) return false;
  }
  return true;
}

// With PMEMFS_CRASH_SAVE=DIR, a failing image is written to DIR/<op>-<n>.img for
// fsck.pmemfs and a debugger.
void SaveImage(const std::string& op, uint64_t n, const std::vector<uint8_t>& img) {
  const char* dir = std::getenv("PMEMFS_CRASH_SAVE");
  if (!dir) return;
  std::string path = std::string(dir) + "/" + op + "-" + std::to_string(n) + ".img";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(img.data(), 1, img.size(), f);
    std::fclose(f);
  }
}

}  // namespace

std::string VisibleState(fs::FileSystem& fs, std::map<std::string, std::string>* contents) {
  return State(fs, "", contents);
}

DriverResult RunCrashPoints(const Workload& w, const DriverOptions& opts) {
  DriverResult res;
  auto fail = [&](const std::string& where, const std::string& what) {
    if (res.violations.size() < 20) res.violations.push_back(w.name + " " + where + ": " + what);
    else if (res.violations.size() == 20) res.violations.push_back("... (further violations not listed)");
  };

  std::unique_ptr<pmem::CrashRegion> region =
      opts.make_region ? opts.make_region(opts.region_size) : std::make_unique<pmem::CrashRegion>(opts.region_size);
  if (Status s = extent::Format(*region, {}); !s.ok()) {
    fail("setup", "format: " + s.error().Message());
    return res;
  }
  std::map<std::string, std::string> pre_data, post_data;
  std::string pre, post;
  {
    auto mounted = fs::FileSystem::Mount(*region, {});
    if (!mounted.ok()) {
      fail("setup", "mount: " + mounted.error().Message());
      return res;
    }
    fs::FileSystem& fs = **mounted;
    std::vector<uint64_t> open;
    w.setup(fs, open);
    pre = State(fs, w.tearable, &pre_data);
    region->StartTrace();
    w.op(fs, open);
    post = State(fs, w.tearable, &post_data);
    res.fences = region->fences();
    // Deliberately leaked: its destructor would write a clean-unmount checkpoint into the
    // trace, after the point where the power is cut.
    (void)mounted->release();
  }

  std::mt19937_64 rng(opts.seed);
  pmem::DramRegion scratch(opts.region_size);
  for (size_t k = 0; k <= res.fences; ++k) {
    size_t pending = region->PendingWords(k);
    std::vector<std::pair<std::string, std::function<bool(size_t)>>> subsets;
    if (pending <= 8) {
      for (uint64_t mask = 0; mask < (uint64_t{1} << pending); ++mask) {
        subsets.emplace_back("mask " + std::to_string(mask), [mask](size_t i) { return (mask >> i) & 1; });
      }
    } else {
      subsets.emplace_back("none", [](size_t) { return false; });
      subsets.emplace_back("all", [](size_t) { return true; });
      for (int s = 2; s < opts.samples_per_fence; ++s) {
        uint64_t seed = rng();
        // A random prefix-biased or uniform subset: half the samples keep a random prefix
        // of the pending words (a power cut mid-sequence), half flip a coin per word.
        if (s % 2 == 0) {
          size_t cut = seed % (pending + 1);
          subsets.emplace_back("prefix " + std::to_string(cut), [cut](size_t i) { return i < cut; });
        } else {
          subsets.emplace_back("coin seed " + std::to_string(seed), [seed](size_t i) {
            uint64_t x = (seed ^ (i * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
            return ((x ^ (x >> 31)) & 1) != 0;
          });
        }
      }
    }
    for (const auto& [label, keep] : subsets) {
      std::string where = "fence " + std::to_string(k) + "/" + std::to_string(res.fences) + " (" +
                          std::to_string(pending) + " pending words, " + label + ")";
      std::vector<uint8_t> img = region->Image(k, keep);
      ++res.images;
      std::memcpy(scratch.base(), img.data(), img.size());
      if (std::string r = Fsck(scratch); !r.empty()) {
        fail(where, "fsck of the crash image:\n" + r);
        SaveImage(w.name, res.images, img);
        continue;
      }
      std::memcpy(scratch.base(), img.data(), img.size());  // mount the untouched image
      std::map<std::string, std::string> got_data;
      std::string got;
      {
        auto mounted = fs::FileSystem::Mount(scratch, {});
        if (!mounted.ok()) {
          fail(where, "mount (recovery) failed: " + mounted.error().Message());
          continue;
        }
        got = State(**mounted, w.tearable, &got_data);
      }
      if (got != pre && got != post) {
        fail(where, "visible state is neither before nor after the operation:\n--- got\n" + got + "--- before\n" +
                        pre + "--- after\n" + post);
        continue;
      }
      if (!w.tearable.empty() && !TornBetween(got_data[w.tearable], pre_data[w.tearable], post_data[w.tearable])) {
        fail(where, w.tearable + ": bytes that are neither old nor new");
      }
      if (std::string r = Fsck(scratch); !r.empty()) fail(where, "fsck after recovery and unmount:\n" + r);
    }
  }
  return res;
}

}  // namespace pmemfs::crash
