// SPDX-License-Identifier: BSD-3-Clause
#include "differential/concurrent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <vector>

#include "differential/op.h"

namespace pmemfs::difftest {

namespace {

constexpr int kReleases = 8;

// Version v of the replaced file: a header naming the version and the length, then bytes
// that are never zero and depend on the version, so that a read is checked by itself.
std::string Version(uint64_t v, size_t len) {
  std::string s = "V" + std::to_string(v) + " L" + std::to_string(len) + "\n";
  while (s.size() < len) s.push_back(static_cast<char>(1 + (v * 31 + s.size() * 7) % 255));
  s.resize(len);
  return s;
}

// Checks one complete read: "" when it is some version, else what is wrong.
const char* Check(const std::string& data) {
  if (data.empty()) return "empty";
  size_t zeros = 0;
  for (char c : data) zeros += c == 0;
  if (zeros == data.size()) return "zeros";
  unsigned long long v, len;
  if (std::sscanf(data.c_str(), "V%llu L%llu\n", &v, &len) != 2) return zeros ? "zeros" : "torn";
  if (len != data.size() || Version(v, len) != data) return zeros ? "zeros" : "torn";
  return "";
}

bool ReadWhole(const std::string& path, std::string* out, int* err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      *err = errno;
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  if (::close(fd) != 0) {
    *err = errno;
    return false;
  }
  return true;
}

// Counters a child sends back through a pipe: fixed fields, then "name count" lines.
void SendCounts(int fd, const ConcurrentCounts& c) {
  std::string s = std::to_string(c.file_reads) + " " + std::to_string(c.link_reads) + " " + std::to_string(c.file_versions) +
                  " " + std::to_string(c.link_swaps) + " " + std::to_string(c.zeros) + " " + std::to_string(c.torn) + "\n";
  for (auto& [k, v] : c.errors) s += std::to_string(v) + " " + k + "\n";
  for (size_t off = 0; off < s.size();) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

void ReceiveCounts(int fd, ConcurrentCounts* total) {
  std::string s;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<size_t>(n));
  size_t nl = s.find('\n');
  if (nl == std::string::npos) {
    total->errors["child reported nothing"]++;
    return;
  }
  unsigned long long a, b, c, d, e, f;
  if (std::sscanf(s.c_str(), "%llu %llu %llu %llu %llu %llu", &a, &b, &c, &d, &e, &f) == 6) {
    total->file_reads += a, total->link_reads += b, total->file_versions += c, total->link_swaps += d;
    total->zeros += e, total->torn += f;
  }
  for (size_t pos = nl + 1; pos < s.size();) {
    size_t end = s.find('\n', pos);
    std::string line = s.substr(pos, end - pos);
    size_t sp = line.find(' ');
    if (sp != std::string::npos) total->errors[line.substr(sp + 1)] += std::stoull(line.substr(0, sp));
    pos = end == std::string::npos ? s.size() : end + 1;
  }
}

using Clock = std::chrono::steady_clock;

void Reader(const std::string& dir, Clock::time_point end, uint64_t seed, ConcurrentCounts* c) {
  std::mt19937_64 rng(seed);
  std::string data;
  // Reads `rel` whole and counts what it saw; false on an error (counted too).
  auto read_checked = [&](const std::string& rel, uint64_t* reads) {
    int err = 0;
    if (!ReadWhole(dir + "/" + rel, &data, &err)) {
      c->errors["read " + rel + ": " + ErrName(err)]++;
      return false;
    }
    ++*reads;
    std::string bad = Check(data);
    if (bad == "zeros") c->zeros++;
    else if (!bad.empty()) c->torn++;
    return true;
  };
  while (Clock::now() < end) {
    if (rng() % 2) {
      read_checked("data", &c->file_reads);
    } else {
      char target[256];
      ssize_t n = ::readlink((dir + "/current").c_str(), target, sizeof target);
      if (n < 0) {
        c->errors["readlink current: " + ErrName(errno)]++;
        continue;
      }
      std::string t(target, static_cast<size_t>(n));
      if (t.rfind("rel/v", 0) != 0) c->torn++;
      read_checked("current/payload", &c->link_reads);
    }
  }
}

void FileWriter(const std::string& dir, Clock::time_point end, uint64_t seed, ConcurrentCounts* c) {
  std::mt19937_64 rng(seed);
  for (uint64_t v = 1; Clock::now() < end; ++v) {
    std::string tmp = dir + "/data.tmp";
    std::string content = Version(v, 4096 + rng() % (256 << 10));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      c->errors["writer open: " + ErrName(errno)]++;
      continue;
    }
    if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()))
      c->errors["writer write: " + ErrName(errno)]++;
    if (::close(fd) != 0) c->errors["writer close: " + ErrName(errno)]++;
    if (::rename(tmp.c_str(), (dir + "/data").c_str()) != 0) c->errors["writer rename: " + ErrName(errno)]++;
    else c->file_versions++;
  }
}

void LinkWriter(const std::string& dir, Clock::time_point end, uint64_t seed, ConcurrentCounts* c) {
  std::mt19937_64 rng(seed);
  while (Clock::now() < end) {
    std::string tmp = dir + "/current.tmp";
    std::string target = "rel/v" + std::to_string(rng() % kReleases);
    if (::symlink(target.c_str(), tmp.c_str()) != 0) {
      c->errors["ln -s: " + ErrName(errno)]++;
      ::unlink(tmp.c_str());
      continue;
    }
    if (::rename(tmp.c_str(), (dir + "/current").c_str()) != 0) c->errors["rename link: " + ErrName(errno)]++;
    else c->link_swaps++;
  }
}

}  // namespace

uint64_t ConcurrentCounts::Bad() const {
  uint64_t n = zeros + torn;
  for (auto& [k, v] : errors) n += v;
  return n;
}

std::string ConcurrentCounts::Summary() const {
  std::string s = std::to_string(file_reads) + " file reads over " + std::to_string(file_versions) + " versions, " +
                  std::to_string(link_reads) + " reads through a symlink over " + std::to_string(link_swaps) +
                  " swaps; bad: " + std::to_string(zeros) + " all-zero, " + std::to_string(torn) + " torn";
  for (auto& [k, v] : errors) s += ", " + std::to_string(v) + " x " + k;
  return s;
}

ConcurrentCounts RunConcurrent(const std::string& dir, double seconds, int readers) {
  ConcurrentCounts total;
  // The releases the symlink points to, and a first version of each name.
  ::mkdir((dir + "/rel").c_str(), 0755);
  for (int k = 0; k < kReleases; ++k) {
    std::string rel = dir + "/rel/v" + std::to_string(k);
    ::mkdir(rel.c_str(), 0755);
    int fd = ::open((rel + "/payload").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    std::string content = Version(1000 + static_cast<uint64_t>(k), 8192 + 4096 * static_cast<size_t>(k));
    if (fd < 0 || ::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) total.errors["setup"]++;
    if (fd >= 0) ::close(fd);
  }
  {
    std::string v0 = Version(0, 5000);
    int fd = ::open((dir + "/data").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, v0.data(), v0.size()) != static_cast<ssize_t>(v0.size())) total.errors["setup"]++;
    if (fd >= 0) ::close(fd);
    if (::symlink("rel/v0", (dir + "/current").c_str()) != 0) total.errors["setup"]++;
  }
  auto end = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  struct Child {
    pid_t pid;
    int fd;
  };
  std::vector<Child> kids;
  std::random_device rd;
  for (int i = 0; i < readers + 2; ++i) {
    int p[2];
    if (::pipe(p) != 0) std::abort();
    uint64_t seed = rd();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(p[0]);
      ConcurrentCounts c;
      if (i == 0) FileWriter(dir, end, seed, &c);
      else if (i == 1) LinkWriter(dir, end, seed, &c);
      else Reader(dir, end, seed, &c);
      SendCounts(p[1], c);
      ::_exit(0);
    }
    ::close(p[1]);
    kids.push_back({pid, p[0]});
  }
  for (auto& k : kids) {
    ReceiveCounts(k.fd, &total);
    ::close(k.fd);
    int st;
    ::waitpid(k.pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) total.errors["child died"]++;
  }
  return total;
}

}  // namespace pmemfs::difftest
