// SPDX-License-Identifier: BSD-3-Clause
#include "differential/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "differential/exec.h"
#include "mount/mount_fixture.h"

namespace pmemfs::difftest {

using testing::PmemfsMount;

namespace {

// Adds the seconds from its construction to its destruction to a counter.
class Timer {
 public:
  explicit Timer(double* acc) : acc_(acc), start_(std::chrono::steady_clock::now()) {}
  ~Timer() { *acc_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

 private:
  double* acc_;
  std::chrono::steady_clock::time_point start_;
};

// ---- cleanup on SIGINT/SIGTERM ----------------------------------------------------------------
// The destructor removes everything; a signal (ctest's timeout, ^C) runs this instead:
// detach the mounts (the daemon then exits: its connection is gone), delete the region.
// Only async-signal-safe calls, on paths registered in fixed buffers.
constexpr int kMaxPaths = 16;
char g_paths[kMaxPaths][256];  // mounts first, then files, then directories (deepest first)
char g_kinds[kMaxPaths];       // 'm' mount, 'f' file, 'd' directory
volatile sig_atomic_t g_npaths = 0;
struct sigaction g_previous[65];  // the handlers installed before ours (the mount fixture's)

void OnSignal(int sig) {
  for (int i = 0; i < g_npaths; ++i) {
    if (g_kinds[i] == 'm') ::umount2(g_paths[i], MNT_DETACH);
  }
  for (int i = 0; i < g_npaths; ++i) {
    if (g_kinds[i] == 'f') ::unlink(g_paths[i]);
  }
  for (int i = g_npaths - 1; i >= 0; --i) {
    if (g_kinds[i] == 'd') ::rmdir(g_paths[i]);
  }
  // Then whatever cleanup was there before (the mount fixture's), or the default action.
  const struct sigaction& prev = g_previous[sig];
  if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void Register(char kind, const std::string& path) {
  if (g_npaths >= kMaxPaths || path.size() >= sizeof g_paths[0]) return;
  std::snprintf(g_paths[g_npaths], sizeof g_paths[0], "%s", path.c_str());
  g_kinds[g_npaths] = kind;
  g_npaths = g_npaths + 1;
  static bool installed = false;
  if (!installed) {
    installed = true;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction sa {};
      sa.sa_handler = OnSignal;
      sigemptyset(&sa.sa_mask);
      ::sigaction(sig, &sa, &g_previous[sig]);
    }
  }
}

void Unregister() { g_npaths = 0; }

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

// A file's size and data segments, holes read as zeros.
struct Image {
  int64_t size = 0;
  std::map<int64_t, std::string> data;  // offset -> bytes
  unsigned char At(int64_t x) const {
    auto it = data.upper_bound(x);
    if (it == data.begin()) return 0;
    --it;
    return x < it->first + static_cast<int64_t>(it->second.size()) ? static_cast<unsigned char>(it->second[static_cast<size_t>(x - it->first)]) : 0;
  }
};

bool ReadImage(const std::string& path, Image* img) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOATIME | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return false;
  }
  img->size = st.st_size;
  img->data.clear();
  for (int64_t off = 0; off < st.st_size;) {
    off_t d = ::lseek(fd, off, SEEK_DATA);
    if (d < 0) break;
    off_t h = ::lseek(fd, d, SEEK_HOLE);
    if (h <= d) h = st.st_size;
    std::string buf(static_cast<size_t>(std::min<int64_t>(h, st.st_size) - d), '\0');
    ssize_t n = ::pread(fd, buf.data(), buf.size(), d);
    if (n < 0) {
      ::close(fd);
      return false;
    }
    buf.resize(static_cast<size_t>(n));
    img->data[d] = std::move(buf);
    off = h;
  }
  ::close(fd);
  return true;
}

// Every offset at which one of the images has data, as merged ranges.
std::vector<std::pair<int64_t, int64_t>> DataRanges(std::initializer_list<const Image*> imgs) {
  std::vector<std::pair<int64_t, int64_t>> r;
  for (const Image* i : imgs)
    for (auto& [off, bytes] : i->data) r.push_back({off, off + static_cast<int64_t>(bytes.size())});
  std::sort(r.begin(), r.end());
  std::vector<std::pair<int64_t, int64_t>> m;
  for (auto& x : r) {
    if (!m.empty() && x.first <= m.back().second) m.back().second = std::max(m.back().second, x.second);
    else m.push_back(x);
  }
  return m;
}

// Whether the bytes [a, b) of the reference file at `path` are all zero.
bool RangeZero(const std::string& path, int64_t a, int64_t b) {
  Image img;
  if (!ReadImage(path, &img)) return false;
  for (auto& [off, bytes] : img.data) {
    int64_t s = std::max(a, off), e = std::min(b, off + static_cast<int64_t>(bytes.size()));
    for (int64_t x = s; x < e; ++x)
      if (bytes[static_cast<size_t>(x - off)] != 0) return false;
  }
  return true;
}

std::string Result(const Outcome& o) {
  if (o.ret == -1) return ErrName(o.err);
  return "ok";
}

bool Enospc(const Outcome& o) { return o.ret == -1 && o.err == ENOSPC; }

}  // namespace

// Calls after which pmemfs may keep or update times the reference did the other way,
// when the size stays the same: truncate(2) to the current size (POSIX asks for new times
// only "if the file size is changed"; ext4, XFS and tmpfs leave them, pmemfs updates them),
// and an allocating fallocate within the size (ext4 updates only ctime, XFS and tmpfs also
// mtime). The probe ignores the bits, and the reference then takes pmemfs's mtime. Size
// changes are compared strictly.
bool Harness::FifoIo(const Op& op) const {
  auto it = slots_.find(op.slot);
  return it != slots_.end() && S_ISFIFO(it->second.mode) &&
         (op.kind == Kind::kRead || op.kind == Kind::kWrite || op.kind == Kind::kPread || op.kind == Kind::kPwrite);
}

bool NoIdChown(const Op& op) {
  return (op.kind == Kind::kChown || op.kind == Kind::kFchown) && op.uid == UINT32_MAX && op.gid == UINT32_MAX;
}

bool SizeKeepingCall(const Op& op) {
  return op.kind == Kind::kTruncate || (op.kind == Kind::kFallocate && (op.flags & ~FALLOC_FL_KEEP_SIZE) == 0);
}

namespace {

}  // namespace

std::vector<Identity> DefaultIdentities() {
  return {Identity{0, 0, {}}, Identity{0, 0, {}}, Identity{1000, 1000, {1000, 1002}}, Identity{1001, 1001, {1001, 1002}}};
}

std::string BaseDir() {
  const char* d = std::getenv("PMEMFS_TEST_DIR");
  return d && *d ? d : "/dev/shm";
}

void SweepStale() {
  const std::string base = BaseDir();
  DIR* d = ::opendir(base.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("difftest.", 0) != 0) continue;
    pid_t pid = std::atoi(name.c_str() + 9);
    if (pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH)) continue;
    stale.push_back(base + "/" + name);
  }
  ::closedir(d);
  for (const auto& dir : stale) {
    std::ifstream in("/proc/self/mountinfo");
    std::vector<std::string> mounts;
    for (std::string line; std::getline(in, line);) {
      std::istringstream ss(line);
      std::string id, parent, dev, root, point;
      ss >> id >> parent >> dev >> root >> point;
      if (point.rfind(dir + "/", 0) == 0) mounts.push_back(point);
    }
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    RemoveTree(dir);
  }
}

Harness::Harness(const Config& cfg) : cfg_(cfg), ids_(DefaultIdentities()) {}

Harness::~Harness() {
  workers_.reset();
  pm_.reset();  // unmounts (lazily if a descriptor is still open somewhere) and removes its directory
  if (!ref_mnt_.empty()) ::umount2(ref_mnt_.c_str(), MNT_DETACH);
  if (!top_.empty()) RemoveTree(top_);
  Unregister();
}

Divergence Harness::Div(const std::string& signature, const std::string& detail, size_t index) const {
  return Divergence{signature, detail, index};
}

std::string Harness::DaemonLogTail(size_t lines) const {
  if (!pm_) return "";
  std::istringstream in(pm_->last_output());
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += "    | " + all[i] + "\n";
  return out;
}

std::optional<Divergence> Harness::Setup() {
  Timer timer(&stats_.t_setup);
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  clock_.start_s = now.tv_sec - 5;
  std::string tmpl = BaseDir() + "/difftest." + std::to_string(::getpid()) + ".XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return Div("setup", "mkdtemp " + tmpl + ": " + ErrName(errno), 0);
  top_ = buf.data();
  ::chmod(top_.c_str(), 0755);  // the unprivileged workers must reach both mounts
  ref_mnt_ = top_ + "/ref";
  ::mkdir(ref_mnt_.c_str(), 0755);
  // The same flags as the FUSE mount (nosuid,nodev); large enough never to run out.
  if (::mount("tmpfs", ref_mnt_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=2g,mode=0755") != 0)
    return Div("setup", "mount tmpfs: " + ErrName(errno), 0);
  pm_ = std::make_unique<PmemfsMount>(cfg_.region_bytes, top_);
  Register('m', ref_mnt_);
  Register('m', pm_->mnt());
  Register('f', pm_->region());
  Register('f', pm_->dir() + "/daemon.log");
  Register('d', top_);
  Register('d', ref_mnt_);
  Register('d', pm_->dir());
  Register('d', pm_->mnt());
  ::chmod(pm_->dir().c_str(), 0755);
  testing::CommandResult mk = pm_->Mkfs();
  if (mk.status != 0) return Div("setup", "mkfs.pmemfs: " + mk.output, 0);
  if (!pm_->Mount("allow_other")) return Div("setup", "mount pmemfs:\n" + pm_->last_output(), 0);
  proot_ = pm_->mnt() + "/t";
  troot_ = ref_mnt_ + "/t";
  ballast_ = pm_->mnt() + "/.ballast";
  for (const auto& r : {proot_, troot_}) {
    if (::mkdir(r.c_str(), 0777) != 0 || ::chmod(r.c_str(), 0777) != 0) return Div("setup", "mkdir " + r + ": " + ErrName(errno), 0);
  }
  if (::mkdir(ballast_.c_str(), 0700) != 0) return Div("setup", "mkdir " + ballast_ + ": " + ErrName(errno), 0);
  struct statvfs sv;
  if (::statvfs(pm_->mnt().c_str(), &sv) != 0) return Div("setup", "statvfs: " + ErrName(errno), 0);
  total_blocks_ = sv.f_blocks;
  // Each worker's scratch file for BumpTimestampFloor (exec.cc), on the reference, outside
  // the tree, owned by the worker's user.
  const std::string clock_prefix = ref_mnt_ + "/clock.";
  for (size_t w = 0; w < ids_.size(); ++w) {
    std::string f = clock_prefix + std::to_string(w);
    int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::fchown(fd, ids_[w].uid, ids_[w].gid) != 0) return Div("setup", "clock file " + f + ": " + ErrName(errno), 0);
    ::close(fd);
  }
  workers_ = std::make_unique<Workers>(ids_, proot_, troot_, clock_prefix, cfg_.emulate_zero_range);
  return std::nullopt;
}

const std::vector<Node>& Harness::Tree() {
  // A view a few calls old only makes the generator pick a name that has just gone (a
  // call that fails alike on both sides): refreshed at most every fourth call.
  if (tree_stale_ && (tree_.empty() || stats_.ops >= tree_ops_ + 4)) {
    tree_ops_ = stats_.ops;
    Timer timer(&stats_.t_view);
    std::string err;
    if (!Walk(troot_, &tree_, &err, false)) tree_.clear();
    tree_bytes_ = 0;
    for (auto& n : tree_)
      if (S_ISREG(n.st.mode)) tree_bytes_ += n.st.blocks * 512;
    tree_stale_ = false;
  }
  return tree_;
}

int64_t Harness::TreeBytes() {
  Tree();
  return tree_bytes_;
}

uint64_t Harness::FreeBlocks() {
  if (free_stale_) {
    struct statvfs sv;
    free_blocks_ = ::statvfs(proot_.c_str(), &sv) == 0 ? sv.f_bavail : 0;
    free_stale_ = false;
  }
  return free_blocks_;
}

std::string Harness::ProcFd(int worker, int fd) const {
  return "/proc/" + std::to_string(workers_->pid(worker)) + "/fd/" + std::to_string(fd);
}

int Harness::PFd(int slot) const {
  auto it = slots_.find(slot);
  return it == slots_.end() ? -1 : it->second.pfd;
}

int Harness::TFd(int slot) const {
  auto it = slots_.find(slot);
  return it == slots_.end() ? -1 : it->second.tfd;
}

std::string Harness::CompareFile(const std::string& ppath, const std::string& tpath) {
  int pfd = ::open(ppath.c_str(), O_RDONLY | O_NOATIME | O_NONBLOCK | O_CLOEXEC);
  if (pfd < 0) return "pmemfs reopen: " + ErrName(errno);
  int tfd = ::open(tpath.c_str(), O_RDONLY | O_NOATIME | O_NONBLOCK | O_CLOEXEC);
  if (tfd < 0) {
    ::close(pfd);
    return "reference reopen (harness bug): " + ErrName(errno);
  }
  struct stat ps, ts;
  std::string d;
  StatInfo synced;
  if (::fstat(pfd, &ps) == 0 && ::fstat(tfd, &ts) == 0) {
    d = CompareStat(ToInfo(ps), ToInfo(ts), clock_);
    if (d.empty() && SyncStat(pfd, "", AT_EMPTY_PATH, &synced)) {
      // What the daemon holds must agree too, not only the kernel's cached copy.
      d = CompareStat(synced, ToInfo(ts), clock_);
      if (!d.empty()) d = "(the daemon's attributes; the kernel's cached ones agree) " + d;
    }
    if (d.empty() && S_ISREG(ts.st_mode)) d = CompareContent(pfd, tfd, ts.st_size);
  }
  ::close(pfd);
  ::close(tfd);
  return d;
}

std::optional<Divergence> Harness::CheckTrees(const std::string& when, size_t index) {
  stats_.checks++;
  Timer timer(&stats_.t_check);
  std::string d = CompareTrees(proot_, troot_, clock_);
  if (d.empty()) return std::nullopt;
  return Div("tree", "the trees differ " + when + ":\n" + d, index);
}

// ---- running one op ---------------------------------------------------------------------------

std::optional<Divergence> Harness::Run(const Op& op, size_t index) {
  stats_.ops++;
  free_stale_ = true;
  if (trace_ && IsHarnessOp(op.kind)) trace_->push_back(Describe(op));
  switch (op.kind) {
    case Kind::kRemount: return Remount(false, index);
    case Kind::kKill: return Remount(true, index);
    case Kind::kCheck: return CheckTrees("", index);
    case Kind::kBallastWrite: case Kind::kBallastPunch: case Kind::kBallastUnlink:
      Ballast(op);
      return std::nullopt;
    default:
      break;
  }
  if (op.worker < 0 || op.worker >= workers()) return Div("harness", "op names worker " + std::to_string(op.worker), index);
  // truncate(2) and allocating fallocate that leave the size as it was: whether they
  // update the times differs between Linux filesystems (see SizeKeepingTimes).
  std::string tfile, pfile;
  int64_t size_before = -1;
  if (SizeKeepingCall(op)) {
    tfile = op.kind == Kind::kTruncate ? troot_ + "/" + op.path : TFd(op.slot) >= 0 ? ProcFd(op.worker, TFd(op.slot)) : "";
    pfile = op.kind == Kind::kTruncate ? proot_ + "/" + op.path : PFd(op.slot) >= 0 ? ProcFd(op.worker, PFd(op.slot)) : "";
    struct stat st;
    if (!tfile.empty() && ::stat(tfile.c_str(), &st) == 0 && S_ISREG(st.st_mode)) size_before = st.st_size;
  }
  Outcome p, t;
  auto t0 = std::chrono::steady_clock::now();
  bool answered = workers_->Exec(op.worker, 0, op, &p, cfg_.op_timeout_ms);
  stats_.t_pmem += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!answered)
    return Div(std::string("hang in ") + KindName(op.kind),
               "pmemfs did not answer within " + std::to_string(cfg_.op_timeout_ms / 1000) + " s (or the worker died)", index);
  if (p.ret == -1 && p.err == ENOTCONN) return Div("daemon died", "pmemfs answered ENOTCONN: the daemon is gone", index);
  if (p.synthetic) not_run_.push_back(index);
  bool handled = false;
  if (auto d = ModelNoSpace(op, p, index, &handled)) return d;
  if (!handled && op.kind == Kind::kOpen && (op.flags & __O_TMPFILE) == __O_TMPFILE && p.ret == -1 && p.err == EOPNOTSUPP) {
    // FUSE answers EOPNOTSUPP for O_TMPFILE unless the daemon implements FUSE_TMPFILE, which
    // pmemfs does not; open(2) documents the error for filesystems without it. The checks
    // before it (lookup, permission, flags) are the VFS's, so the reference must succeed or
    // fail the same way; its unnamed file is dropped at once.
    if (!workers_->Exec(op.worker, 1, op, &t, cfg_.op_timeout_ms)) return Div("harness", "the reference worker did not answer", index);
    if (t.ret == -1) {
      if (auto d = Compare(op, p, t, index)) return d;
    } else {
      Op close = op;
      close.kind = Kind::kClose;
      Outcome c;
      workers_->Exec(op.worker, 1, close, &c, cfg_.op_timeout_ms);
    }
    if (trace_) trace_->push_back(Describe(op) + "  " + Describe(op, p) + "   [no O_TMPFILE in FUSE: reference's file dropped]");
    return std::nullopt;
  }
  if (!handled) {
    auto t1 = std::chrono::steady_clock::now();
    answered = workers_->Exec(op.worker, 1, op, &t, cfg_.op_timeout_ms);
    stats_.t_ref += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    if (!answered) return Div("harness", "the reference worker did not answer", index);
    if (trace_) {
      std::string ps = Describe(op, p), ts = Describe(op, t);
      trace_->push_back(Describe(op) + "  " + ps + (ps == ts ? "" : "   [reference " + ts + "]"));
    }
    if (NoIdChown(op) && p.ret == 0 && (t.ret == 0 || t.err == EPERM)) {
      // chown(f, -1, -1) of a non-directory: the VFS turns it into "clear set-user-ID and
      // set-group-ID", and checks ownership for that (tmpfs: EPERM for a non-owner, the bits
      // cleared otherwise). FUSE with HANDLE_KILLPRIV_V2 strips that part and sends the daemon
      // a SETATTR with no field set, so no FUSE filesystem can tell it was a chown. The
      // reference takes pmemfs's mode.
      std::string pp = op.kind == Kind::kFchown ? ProcFd(op.worker, PFd(op.slot)) : proot_ + "/" + op.path;
      std::string tp = op.kind == Kind::kFchown ? ProcFd(op.worker, TFd(op.slot)) : troot_ + "/" + op.path;
      bool nofollow = op.kind == Kind::kChown && (op.flags & AT_SYMLINK_NOFOLLOW);
      struct stat ps;
      if ((nofollow ? ::lstat(pp.c_str(), &ps) : ::stat(pp.c_str(), &ps)) == 0 && !S_ISLNK(ps.st_mode))
        ::chmod(tp.c_str(), ps.st_mode & 07777);
      return std::nullopt;
    }
    if (auto d = Compare(op, p, t, index)) return d;
    AfterOp(op, p, t);
    if (FifoIo(op) && p.ret >= 0 && t.ret >= 0) {
      // Data through a FIFO never reaches a FUSE daemon (the kernel's pipe code carries it,
      // and FUSE inodes are S_NOCMTIME): its times stay; the reference takes pmemfs's.
      struct stat ps;
      std::string tp = ProcFd(op.worker, TFd(op.slot));
      if (::stat(ProcFd(op.worker, PFd(op.slot)).c_str(), &ps) == 0) {
        timespec times[2] = {ps.st_atim, ps.st_mtim};
        ::utimensat(AT_FDCWD, tp.c_str(), times, 0);
      }
    }
    if (size_before >= 0 && p.ret == 0 && t.ret == 0) {
      struct stat ts, ps;
      if (::stat(tfile.c_str(), &ts) == 0 && ts.st_size == size_before && ::stat(pfile.c_str(), &ps) == 0) {
        timespec times[2] = {{0, UTIME_OMIT}, ps.st_mtim};
        ::utimensat(AT_FDCWD, tfile.c_str(), times, 0);
      }
    }
  } else if (trace_) {
    trace_->push_back(Describe(op) + "  " + Describe(op, p) + "   [out of space: reference made to match]");
  }
  if (ChangesNames(op.kind) || !(op.kind == Kind::kRead || op.kind == Kind::kPread || op.kind == Kind::kStat ||
                                 op.kind == Kind::kLstat || op.kind == Kind::kFstat || op.kind == Kind::kGetxattr ||
                                 op.kind == Kind::kReaddir || op.kind == Kind::kGetdents || op.kind == Kind::kReadlink ||
                                 op.kind == Kind::kReopenRead || op.kind == Kind::kFreadlink)) {
    if (ChangesNames(op.kind) || stats_.ops % 16 == 0) tree_stale_ = true;
  }
  return std::nullopt;
}

void Harness::AfterOp(const Op& op, const Outcome& p, const Outcome& t) {
  if (op.kind == Kind::kOpen && p.ret == 0 && t.ret == 0) {
    slots_[op.slot] = SlotInfo{op.worker, op.path, op.flags, S_ISDIR(t.st.mode), t.st.mode, p.fd, t.fd};
  } else if (op.kind == Kind::kOpen || op.kind == Kind::kClose) {
    slots_.erase(op.slot);  // open into a used slot closed the old descriptor first
  }
}

std::optional<Divergence> Harness::Compare(const Op& op, const Outcome& p, const Outcome& t, size_t index) {
  const std::string what = KindName(op.kind);
  auto both = [&] {
    return "pmemfs " + Describe(op, p) + "\n  reference " + Describe(op, t) + "\n  (pmemfs free blocks: " +
           std::to_string(FreeBlocks()) + ")";
  };
  if (p.synthetic != t.synthetic) return Div("harness", "slot open on one side only: " + both(), index);
  if (p.synthetic) return std::nullopt;
  const bool hole_seek = op.kind == Kind::kLseek && (op.flags == SEEK_DATA || op.flags == SEEK_HOLE);
  if (hole_seek && p.err != t.err && (p.err == 0 || p.err == ENXIO) && (t.err == 0 || t.err == ENXIO)) {
    // falls through to the plausibility check below
  } else if ((p.ret == -1) != (t.ret == -1) || p.err != t.err ||
             (op.kind != Kind::kOpen && !hole_seek && p.ret != t.ret)) {
    return Div("result of " + what + " (pmemfs " + Result(p) + ", reference " + Result(t) + ")", both(), index);
  }
  if (hole_seek && (p.ret != t.ret || p.err != t.err)) {
    // SEEK_DATA may call a hole data, and unwritten (fallocated) space may be either: Linux
    // filesystems differ (tmpfs reports fallocated pages as holes until written). Legal
    // answers: SEEK_DATA -> an offset r with only zeros in [off, r), or ENXIO when only
    // zeros follow; SEEK_HOLE -> r in [off, size] with a zero byte at r.
    std::string tpath = ProcFd(op.worker, TFd(op.slot));
    struct stat st;
    if (::stat(tpath.c_str(), &st) != 0) return Div("harness", "stat " + tpath + ": " + ErrName(errno), index);
    int64_t size = st.st_size, off = op.off;
    bool ok;
    if (op.flags == SEEK_DATA) {
      ok = p.ret == -1 ? RangeZero(tpath, off, size) : p.ret >= off && p.ret < size && RangeZero(tpath, off, p.ret);
    } else {
      ok = p.ret == -1 ? off >= size : p.ret >= off && p.ret <= size && (p.ret == size || RangeZero(tpath, p.ret, p.ret + 1));
    }
    if (!ok) return Div("implausible " + what + (op.flags == SEEK_DATA ? " SEEK_DATA" : " SEEK_HOLE"), both() + "\n  (size " + std::to_string(size) + ")", index);
  }
  if (p.data != t.data) {
    size_t i = 0;
    while (i < p.data.size() && i < t.data.size() && p.data[i] == t.data[i]) ++i;
    size_t zeros = 0;
    for (size_t j = i; j < p.data.size(); ++j) zeros += p.data[j] == 0;
    std::string detail = both() + "\n  first difference at byte " + std::to_string(i) + "; pmemfs has " +
                         std::to_string(zeros) + " zero bytes from there";
    if (op.kind == Kind::kReaddir || op.kind == Kind::kGetdents || op.kind == Kind::kListxattr || op.kind == Kind::kFlistxattr)
      detail += "\n  pmemfs:\n" + p.data + "  reference:\n" + t.data;
    return Div("data of " + what, detail, index);
  }
  if (p.st.valid || t.st.valid) {
    std::string sd = CompareStat(p.st, t.st, clock_);
    if (!sd.empty()) return Div("stat after " + what, both() + "\n  " + sd, index);
  }
  uint32_t ignore = SizeKeepingCall(op) && !(t.probe & kTargetSize)
                        ? (op.kind == Kind::kTruncate ? kTargetMtime | kTargetCtime : kTargetMtime)
                        : 0u;
  if (FifoIo(op)) ignore |= kTargetMtime | kTargetCtime;
  if (op.probe && (p.probe & ~ignore) != (t.probe & ~ignore)) {
    auto bits = [](uint32_t b) {
      std::string s;
      for (auto [bit, name] : {std::pair<uint32_t, const char*>{kTargetBefore, "existed"}, {kTargetAfter, "exists"},
                               {kTargetSameInode, "same-inode"}, {kTargetMtime, "mtime"}, {kTargetCtime, "ctime"},
                               {kParentMtime, "parent-mtime"}, {kParentCtime, "parent-ctime"}, {kTargetSize, "size"}})
        if (b & bit) s += std::string(name) + " ";
      return s;
    };
    return Div("times changed by " + what,
               both() + "\n  changed on pmemfs: [" + bits(p.probe) + "], on the reference: [" + bits(t.probe) + "]", index);
  }
  return std::nullopt;
}

// ---- ENOSPC -------------------------------------------------------------------------------------
//
// The pmemfs region is small and kept nearly full; the reference is large. So pmemfs may
// run out of space where the reference does not, which Linux allows of any filesystem,
// and only then: an ENOSPC or a short write is accepted when pmemfs really is (nearly)
// full — statfs shows at most kSlackBlocks free (plus the blocks an allocating fallocate
// asks for) — and the reference, given the same call, would have succeeded. Otherwise the
// call is compared as usual, so an ENOSPC with space left is reported. When accepted:
//  - write, pwrite, copy_file_range: the reference runs the same call with the length pmemfs
//    managed (0 for ENOSPC) and must return exactly that; then the files must be equal
//    (POSIX: a failed write writes nothing, a short write writes a prefix).
//  - truncate, ftruncate, fallocate: Linux filesystems may leave part of the work done
//    (ext4 keeps blocks an interrupted fallocate allocated); the reference runs the call,
//    pmemfs's file must then hold, byte by byte, either the old or the new content, with a
//    size between the two, and the reference is then set to pmemfs's outcome.
//  - calls that create a name, rename, setxattr: the reference runs the call and, when it
//    succeeds, it is undone there (so an ENOSPC where the reference fails otherwise, e.g.
//    with EEXIST, is still a divergence); then the trees must be equal (nothing changed).
std::optional<Divergence> Harness::ModelNoSpace(const Op& op, const Outcome& p, size_t index, bool* handled) {
  *handled = false;
  const Kind k = op.kind;
  const bool counted = k == Kind::kWrite || k == Kind::kPwrite || k == Kind::kCopyRange;
  const bool short_count = counted && p.ret >= 0 && p.ret < op.len;
  if (!Enospc(p) && !short_count) return std::nullopt;
  if (counted) {
    // Only a regular file runs out of space: a write to a FIFO is short when its pipe is
    // full, on both sides alike.
    struct stat fst;
    const int fd = PFd(k == Kind::kCopyRange ? op.slot2 : op.slot);
    if (fd < 0 || ::stat(ProcFd(op.worker, fd).c_str(), &fst) != 0 || !S_ISREG(fst.st_mode)) return std::nullopt;
  }
  struct statvfs sv;
  if (::statvfs(proot_.c_str(), &sv) != 0) return std::nullopt;
  uint64_t allowed = kSlackBlocks;
  bool creates = false;
  switch (k) {
    case Kind::kWrite: case Kind::kPwrite: case Kind::kCopyRange: case Kind::kTruncate: case Kind::kFtruncate:
      break;
    case Kind::kFallocate:
      if (!(op.flags & FALLOC_FL_PUNCH_HOLE)) allowed += static_cast<uint64_t>(op.len + 4095) / 4096;
      break;
    case Kind::kOpen:
      if (!(op.flags & O_CREAT)) return std::nullopt;
      creates = true;
      break;
    case Kind::kMkdir: case Kind::kMknod: case Kind::kSymlink:
      creates = true;
      break;
    case Kind::kLink: case Kind::kRename:
      break;
    case Kind::kSetxattr: case Kind::kFsetxattr:
      // All of a file's xattrs are one run of up to 64 contiguous blocks, written anew on
      // every change: on fragmented space no run of that length may be left.
      allowed += 64;
      break;
    default:
      return std::nullopt;
  }
  if (sv.f_bavail > allowed && !(creates && sv.f_favail == 0)) return std::nullopt;  // compared as usual
  *handled = true;
  short_count ? stats_.short_modelled++ : stats_.enospc_modelled++;
  const std::string what = KindName(k);
  const std::string sig = "after ENOSPC in " + what;
  Outcome t;
  auto exec_ref = [&](const Op& o) { return workers_->Exec(o.worker, 1, o, &t, cfg_.op_timeout_ms); };
  if (counted) {
    Op adj = op;
    adj.len = short_count ? p.ret : 0;
    if (!exec_ref(adj)) return Div("harness", "the reference worker did not answer", index);
    if (t.ret != adj.len)
      return Div("result of " + what + " (pmemfs " + Result(p) + ", reference " + Result(t) + ")",
                 "pmemfs " + Describe(op, p) + " (out of space); the reference, given length " + std::to_string(adj.len) +
                     ", " + Describe(adj, t),
                 index);
    int slot = k == Kind::kCopyRange ? op.slot2 : op.slot;
    if (PFd(slot) >= 0) {
      std::string d = CompareFile(ProcFd(op.worker, PFd(slot)), ProcFd(op.worker, TFd(slot)));
      if (!d.empty()) return Div(sig, "pmemfs " + Describe(op, p) + "; then the files differ: " + d, index);
    }
    return std::nullopt;
  }
  if (k == Kind::kTruncate || k == Kind::kFtruncate || k == Kind::kFallocate) {
    std::string ppath = k == Kind::kTruncate ? proot_ + "/" + op.path : ProcFd(op.worker, PFd(op.slot));
    std::string tpath = k == Kind::kTruncate ? troot_ + "/" + op.path : ProcFd(op.worker, TFd(op.slot));
    Image before, after, pim;
    if (!ReadImage(tpath, &before)) {  // not a regular file the reference can reach: compare as usual
      *handled = false;
      return std::nullopt;
    }
    if (!exec_ref(op)) return Div("harness", "the reference worker did not answer", index);
    if (t.ret == -1) return Compare(op, p, t, index);
    if (!ReadImage(tpath, &after) || !ReadImage(ppath, &pim)) return Div(sig, "cannot read the file back", index);
    if (pim.size < std::min(before.size, after.size) || pim.size > std::max(before.size, after.size))
      return Div(sig, "pmemfs size " + std::to_string(pim.size) + " is neither old " + std::to_string(before.size) +
                          " nor new " + std::to_string(after.size) + " nor between",
                 index);
    for (auto [a, b] : DataRanges({&before, &after, &pim})) {
      for (int64_t x = a; x < std::min(b, pim.size); ++x) {
        unsigned char v = pim.At(x);
        if (v != before.At(x) && v != after.At(x))
          return Div(sig, "pmemfs byte " + std::to_string(x) + " is " + std::to_string(v) + ", neither old " +
                              std::to_string(before.At(x)) + " nor new " + std::to_string(after.At(x)),
                     index);
      }
    }
    // The reference takes pmemfs's outcome: size, bytes, mode and times.
    int fd = ::open(tpath.c_str(), O_WRONLY | O_CLOEXEC);
    struct stat pst;
    if (fd < 0 || ::stat(ppath.c_str(), &pst) != 0 || ::ftruncate(fd, pim.size) != 0) {
      if (fd >= 0) ::close(fd);
      return Div("harness", "cannot resynchronise the reference file", index);
    }
    for (auto [a, b] : DataRanges({&after, &pim})) {
      std::string bytes;
      for (int64_t x = a; x < std::min(b, pim.size); ++x) bytes.push_back(static_cast<char>(pim.At(x)));
      if (!bytes.empty() && ::pwrite(fd, bytes.data(), bytes.size(), a) != static_cast<ssize_t>(bytes.size())) {
        ::close(fd);
        return Div("harness", "cannot resynchronise the reference file", index);
      }
    }
    timespec times[2] = {pst.st_atim, pst.st_mtim};
    ::fchmod(fd, pst.st_mode & 07777);
    ::futimens(fd, times);
    ::close(fd);
    std::string d = CompareFile(ppath, tpath);
    if (!d.empty()) return Div("harness", "resynchronised reference still differs: " + d, index);
    return std::nullopt;
  }
  if (k == Kind::kSetxattr || k == Kind::kFsetxattr) {
    std::string tpath = k == Kind::kFsetxattr ? ProcFd(op.worker, TFd(op.slot)) : troot_ + "/" + op.path;
    bool nofollow = k == Kind::kSetxattr && (op.flags & AT_SYMLINK_NOFOLLOW);
    std::string old(1 << 16, '\0');
    ssize_t n = nofollow ? ::lgetxattr(tpath.c_str(), op.str.c_str(), old.data(), old.size())
                         : ::getxattr(tpath.c_str(), op.str.c_str(), old.data(), old.size());
    if (!exec_ref(op)) return Div("harness", "the reference worker did not answer", index);
    if (t.ret == -1) return Compare(op, p, t, index);
    int r;
    if (n >= 0) {
      r = nofollow ? ::lsetxattr(tpath.c_str(), op.str.c_str(), old.data(), static_cast<size_t>(n), 0)
                   : ::setxattr(tpath.c_str(), op.str.c_str(), old.data(), static_cast<size_t>(n), 0);
    } else {
      r = nofollow ? ::lremovexattr(tpath.c_str(), op.str.c_str()) : ::removexattr(tpath.c_str(), op.str.c_str());
    }
    if (r != 0) return Div("harness", "cannot undo setxattr on the reference: " + ErrName(errno), index);
    return CheckTrees("after an ENOSPC in " + what + " (nothing may have changed)", index);
  }
  // Calls that create a name, and rename.
  const std::string t1 = troot_ + "/" + op.path, t2 = troot_ + "/" + op.path2;
  struct stat st1, st2;
  bool had1 = ::lstat(t1.c_str(), &st1) == 0, had2 = ::lstat(t2.c_str(), &st2) == 0;
  std::string stash;
  if (k == Kind::kRename && had2 && !(op.flags & RENAME_EXCHANGE)) {
    if (S_ISDIR(st2.st_mode)) {
      // Replacing a directory cannot be undone by a link; pmemfs must simply have changed nothing.
      return CheckTrees("after an ENOSPC in " + what + " (nothing may have changed)", index);
    }
    stash = ref_mnt_ + "/stash";
    if (::link(t2.c_str(), stash.c_str()) != 0) return Div("harness", "cannot stash the rename target: " + ErrName(errno), index);
  }
  if (k == Kind::kOpen && had1) {
    return Div(sig, "pmemfs " + Describe(op, p) + " on an existing name", index);
  }
  // The call and its undo change the times of the directories they touch on the reference;
  // on pmemfs nothing changed, so they get their old times back (an explicit old mtime
  // would otherwise turn into "now" on the reference only).
  struct DirTimes {
    std::string path;
    timespec times[2];
  };
  std::vector<DirTimes> dirs;
  for (const std::string* rel : {&op.path, &op.path2}) {
    if (rel == &op.path2 && k != Kind::kLink && k != Kind::kRename) break;
    std::string r = *rel;
    while (!r.empty() && r.back() == '/') r.pop_back();
    size_t cut = r.find_last_of('/');
    DirTimes d{troot_ + (cut == std::string::npos ? "" : "/" + r.substr(0, cut)), {}};
    struct stat dst;
    if (::stat(d.path.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode)) continue;
    d.times[0] = dst.st_atim, d.times[1] = dst.st_mtim;
    dirs.push_back(d);
  }
  if (!exec_ref(op)) return Div("harness", "the reference worker did not answer", index);
  if (t.ret == -1) {
    if (!stash.empty()) ::unlink(stash.c_str());
    return Compare(op, p, t, index);
  }
  int r = 0;
  switch (k) {
    case Kind::kOpen: {
      Op close = op;
      close.kind = Kind::kClose;
      Outcome c;
      workers_->Exec(op.worker, 1, close, &c, cfg_.op_timeout_ms);
      r = ::unlink(t1.c_str());
      break;
    }
    case Kind::kMkdir: r = ::rmdir(t1.c_str()); break;
    case Kind::kMknod: case Kind::kSymlink: r = ::unlink(t1.c_str()); break;
    case Kind::kLink: r = ::unlink(t2.c_str()); break;
    case Kind::kRename:
      if (op.flags & RENAME_EXCHANGE) {
        r = static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, t1.c_str(), AT_FDCWD, t2.c_str(), RENAME_EXCHANGE));
        break;
      }
      if ((op.flags & RENAME_WHITEOUT) && had1) r = ::unlink(t1.c_str());
      if (r == 0) r = ::rename(t2.c_str(), t1.c_str());
      if (r == 0 && !stash.empty()) r = ::rename(stash.c_str(), t2.c_str());
      break;
    default:
      break;
  }
  if (r != 0) return Div("harness", "cannot undo " + what + " on the reference: " + ErrName(errno), index);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::utimensat(AT_FDCWD, it->path.c_str(), it->times, 0);
  (void)had1;
  return CheckTrees("after an ENOSPC in " + what + " (nothing may have changed)", index);
}

// ---- remount, ballast, finish ---------------------------------------------------------------------

std::optional<Divergence> Harness::Remount(bool kill, size_t index) {
  Timer timer(&stats_.t_remount);
  if (kill) {
    stats_.kills++;
    pm_->Kill();  // descriptors still open: the kernel holds the dead connection until they close
    workers_->CloseAll(-1, cfg_.op_timeout_ms);
  } else {
    stats_.remounts++;
    if (!workers_->CloseAll(-1, cfg_.op_timeout_ms)) return Div("hang in close", "closing descriptors timed out", index);
    int st = pm_->Unmount();
    if (st != 0) return Div("unmount", "the daemon exited with status " + std::to_string(st) + "\n" + DaemonLogTail(), index);
  }
  slots_.clear();
  tree_stale_ = free_stale_ = true;
  testing::CommandResult f = pm_->Fsck("-n");
  if (f.status != 0)
    return Div(kill ? "fsck after SIGKILL" : "fsck after unmount",
               "fsck.pmemfs -n exited " + std::to_string(f.status) + ":\n" + f.output, index);
  if (!pm_->Mount("allow_other")) return Div("mount", "pmemfs did not mount again:\n" + DaemonLogTail(), index);
  return CheckTrees(kill ? "after SIGKILL and remount" : "after unmount and mount", index);
}

void Harness::Ballast(const Op& op) {
  std::string path = ballast_ + "/" + op.str;
  if (op.kind == Kind::kBallastUnlink) {
    ::unlink(path.c_str());
    return;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  if (op.kind == Kind::kBallastPunch) {
    (void)::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op.off, op.len);
  } else if (op.flags) {
    (void)::fallocate(fd, 0, op.off, op.len);
  } else {
    std::string data = Fill(op.seed | 1, static_cast<size_t>(op.len));
    (void)::pwrite(fd, data.data(), data.size(), op.off);
  }
  ::close(fd);
}

std::optional<Divergence> Harness::Finish(size_t index) {
  if (auto d = CheckTrees("at the end", index)) return d;
  if (!workers_->CloseAll(-1, cfg_.op_timeout_ms)) return Div("hang in close", "closing descriptors timed out", index);
  slots_.clear();
  int st = pm_->Unmount();
  if (st != 0) return Div("unmount", "the daemon exited with status " + std::to_string(st) + "\n" + DaemonLogTail(), index);
  testing::CommandResult f = pm_->Fsck("-n");
  if (f.status != 0) return Div("fsck after unmount", "fsck.pmemfs -n exited " + std::to_string(f.status) + ":\n" + f.output, index);
  return std::nullopt;
}

}  // namespace pmemfs::difftest
