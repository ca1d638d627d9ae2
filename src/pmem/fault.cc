// SPDX-License-Identifier: BSD-3-Clause
#include "pmem/fault.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>

namespace pmemfs::pmem::fault {
namespace {

struct Watched {
  std::atomic<uintptr_t> base{0};  // 0: free slot
  std::atomic<uint64_t> size{0};
  std::atomic<int> fd{-1};
  std::atomic<uint64_t> align{4096};
};
constexpr int kMaxWatched = 8;
Watched g_watched[kMaxWatched];
std::mutex g_watch_mu;  // serialises Watch/Unwatch (never taken by the handler)

// Memory replaced by zeros, as absolute [lo, hi). Past the table's end every region byte
// counts as replaced (conservative).
struct Range {
  std::atomic<uintptr_t> lo{0}, hi{0};
};
constexpr int kMaxReplaced = 64;
Range g_replaced[kMaxReplaced];
std::atomic<int> g_nreplaced{0};
std::atomic<bool> g_replaced_overflow{false};

std::atomic<uint64_t> g_count{0};
std::atomic<bool> g_first_set{false};
uint64_t g_first_off = 0;   // written once, by the handler that sets g_first_set
int g_first_code = 0;
int64_t g_first_file_size = -1;
std::atomic<bool> g_first_ready{false};

// Initial-exec TLS (the daemon links this library statically): safe in a signal handler.
thread_local bool t_fault = false;

struct sigaction g_previous {};
std::atomic<uint64_t> g_page{4096};  // the page size, read once outside the handler
std::once_flag g_install_once;

void Record(uintptr_t lo, uintptr_t hi) {
  const int n = std::min(g_nreplaced.load(), kMaxReplaced);
  for (int i = 0; i < n; ++i) {  // the same range again (another thread, another access)
    if (g_replaced[i].lo.load() <= lo && hi <= g_replaced[i].hi.load()) return;
  }
  int i = g_nreplaced.fetch_add(1);
  if (i >= kMaxReplaced) {
    g_replaced_overflow.store(true);
    return;
  }
  g_replaced[i].lo.store(lo);
  g_replaced[i].hi.store(hi);
}

void Chain(int sig, siginfo_t* si, void* uc) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, si, uc);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  // Default: restore it and return; the access faults again and the process dies as it
  // would have without this handler.
  signal(SIGBUS, SIG_DFL);
}

void Handler(int sig, siginfo_t* si, void* uc) {
  const int saved_errno = errno;
  const uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
  for (Watched& w : g_watched) {
    const uintptr_t base = w.base.load();
    const uint64_t size = w.size.load();
    if (base == 0 || a < base || a - base >= size) continue;
    const uint64_t off = a - base;
    const uint64_t align = w.align.load();
    const uint64_t page = g_page.load();
    uint64_t lo = off / align * align, hi = lo + align;
    struct stat st {};
    int64_t file_size = -1;
    const int fd = w.fd.load();
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      file_size = st.st_size;
      const uint64_t end = (static_cast<uint64_t>(st.st_size) + page - 1) / page * page;
      if (end <= off) lo = end, hi = size;  // shrank: every page past its new end at once
    }
    if (hi > size) hi = size;
    void* p = mmap(reinterpret_cast<void*>(base + lo), hi - lo, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) break;  // cannot repair: the previous disposition decides
    Record(base + lo, base + hi);
    if (!g_first_set.exchange(true)) {
      g_first_off = off;
      g_first_code = si->si_code;
      g_first_file_size = file_size;
      g_first_ready.store(true);
    }
    g_count.fetch_add(1);
    t_fault = true;
    errno = saved_errno;
    return;
  }
  errno = saved_errno;
  Chain(sig, si, uc);
}

}  // namespace

bool Watch(void* base, uint64_t size, int fd, uint64_t align) {
  std::lock_guard lk(g_watch_mu);
  for (Watched& w : g_watched) {
    if (w.base.load() != 0) continue;
    w.size.store(size);
    w.fd.store(fd);
    w.align.store(align ? align : 4096);
    w.base.store(reinterpret_cast<uintptr_t>(base));  // last: the slot is complete
    return true;
  }
  return false;
}

void Unwatch(void* base) {
  std::lock_guard lk(g_watch_mu);
  const uintptr_t b = reinterpret_cast<uintptr_t>(base);
  for (Watched& w : g_watched) {
    if (w.base.load() != b) continue;
    const uintptr_t end = b + w.size.load();
    w.base.store(0);
    // The address range may be reused by another mapping: forget what was replaced there.
    const int n = std::min(g_nreplaced.load(), kMaxReplaced);
    for (int i = 0; i < n; ++i) {
      if (g_replaced[i].lo.load() < end && g_replaced[i].hi.load() > b) g_replaced[i].lo = g_replaced[i].hi = 0;
    }
  }
}

void Install() {
  std::call_once(g_install_once, [] {
    g_page.store(static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
    struct sigaction sa {};
    sa.sa_sigaction = Handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;  // a second fault on another page may come at once
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

bool TakeThreadFault() {
  bool f = t_fault;
  t_fault = false;
  return f;
}

uint64_t Count() { return g_count.load(); }

std::string Describe() {
  if (!g_first_ready.load()) return "";
  std::string s = "region offset " + std::to_string(g_first_off) + ": ";
  const char* code = g_first_code == BUS_ADRERR    ? "BUS_ADRERR"
                     : g_first_code == BUS_MCEERR_AR ? "BUS_MCEERR_AR"
                     : g_first_code == BUS_MCEERR_AO ? "BUS_MCEERR_AO"
                     : g_first_code == BUS_OBJERR    ? "BUS_OBJERR"
                                                     : "?";
  if (g_first_code == BUS_MCEERR_AR || g_first_code == BUS_MCEERR_AO)
    s += "a memory error (poisoned line) in the region";
  else if (g_first_file_size >= 0 && static_cast<uint64_t>(g_first_file_size) <= g_first_off)
    s += "the region file shrank to " + std::to_string(g_first_file_size) + " bytes";
  else
    s += "the region mapping could not be accessed";
  return s + " (SIGBUS " + code + ")";
}

bool Replaced(const void* p, size_t len) {
  if (g_count.load() == 0) return false;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + len;
  if (g_replaced_overflow.load()) {
    for (Watched& w : g_watched) {
      uintptr_t base = w.base.load();
      if (base != 0 && lo < base + w.size.load() && hi > base) return true;
    }
  }
  const int n = std::min(g_nreplaced.load(), kMaxReplaced);
  for (int i = 0; i < n; ++i) {
    if (lo < g_replaced[i].hi.load() && hi > g_replaced[i].lo.load()) return true;
  }
  return false;
}

}  // namespace pmemfs::pmem::fault
