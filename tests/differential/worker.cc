// SPDX-License-Identifier: BSD-3-Clause
#include "differential/worker.h"

#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "differential/exec.h"

namespace pmemfs::difftest {

namespace {

enum Cmd : uint8_t { kExec = 1, kCloseAll = 2 };

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads until `n` bytes arrived or the deadline passed (deadline < 0: none).
bool ReadAll(int fd, char* p, size_t n, std::chrono::steady_clock::time_point deadline, bool timed) {
  while (n > 0) {
    if (timed) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return false;
      pollfd pf{fd, POLLIN, 0};
      int pr = ::poll(&pf, 1, static_cast<int>(left));
      if (pr < 0 && errno == EINTR) continue;
      if (pr <= 0) return false;
    }
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r, n -= static_cast<size_t>(r);
  }
  return true;
}

bool SendMsg(int fd, const std::string& m) {
  uint64_t n = m.size();
  return WriteAll(fd, reinterpret_cast<const char*>(&n), sizeof n) && WriteAll(fd, m.data(), m.size());
}

bool RecvMsg(int fd, std::string* m, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed = timeout_ms >= 0;
  uint64_t n;
  if (!ReadAll(fd, reinterpret_cast<char*>(&n), sizeof n, deadline, timed)) return false;
  m->resize(n);
  return ReadAll(fd, m->data(), n, deadline, timed);
}

[[noreturn]] void WorkerMain(int sock, const Identity& id, const std::string& pmem_root, const std::string& ref_root,
                             const std::string& clock_file, bool emulate_zero_range) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // A write to a FIFO nobody reads answers EPIPE on both sides, instead of killing the worker.
  ::signal(SIGPIPE, SIG_IGN);
  if (::chdir("/") != 0) ::_exit(3);  // never pin a mount with a working directory
  if (id.uid != 0 || id.gid != 0) {
    std::vector<gid_t> groups(id.groups.begin(), id.groups.end());
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setresgid(id.gid, id.gid, id.gid) != 0 ||
        ::setresuid(id.uid, id.uid, id.uid) != 0)
      ::_exit(4);
  }
  Side sides[2];
  sides[0].root = pmem_root;
  sides[1].root = ref_root;
  sides[1].reference = true;
  sides[1].emulate_zero_range = emulate_zero_range;
  sides[1].clock_file = clock_file;
  for (std::string req; RecvMsg(sock, &req, -1);) {
    std::string resp;
    if (req.size() < 2) ::_exit(5);
    int side = static_cast<int8_t>(req[1]);
    if (req[0] == kCloseAll) {
      for (int s = 0; s < 2; ++s) {
        if (side >= 0 && side != s) continue;
        for (auto& [slot, fd] : sides[s].fds) ::close(fd);
        sides[s].fds.clear();
      }
    } else {
      size_t pos = 2;
      Op op;
      if (!Deserialize(req, &pos, &op) || side < 0 || side > 1) ::_exit(6);
      Serialize(Execute(op, sides[side]), &resp);
    }
    if (!SendMsg(sock, resp)) ::_exit(7);
  }
  ::_exit(0);
}

}  // namespace

Workers::Workers(const std::vector<Identity>& ids, const std::string& pmem_root, const std::string& ref_root,
                 const std::string& clock_prefix, bool emulate_zero_range) {
  for (const auto& id : ids) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    pid_t pid = ::fork();
    if (pid < 0) std::abort();
    if (pid == 0) {
      ::close(sv[0]);
      for (auto& w : workers_) ::close(w.sock);
      WorkerMain(sv[1], id, pmem_root, ref_root,
                 clock_prefix.empty() ? "" : clock_prefix + std::to_string(workers_.size()), emulate_zero_range);
    }
    ::close(sv[1]);
    workers_.push_back(Worker{id, pid, sv[0]});
  }
}

Workers::~Workers() {
  for (auto& w : workers_) Stop(w);
}

void Workers::Stop(Worker& w) {
  if (w.sock >= 0) ::close(w.sock), w.sock = -1;  // EOF: the worker exits
  if (w.pid > 0) {
    ::kill(w.pid, SIGKILL);
    ::waitpid(w.pid, nullptr, 0);
    w.pid = -1;
  }
}

bool Workers::Call(Worker& w, const std::string& req, std::string* resp, int timeout_ms) {
  if (w.sock < 0) return false;
  if (!SendMsg(w.sock, req) || !RecvMsg(w.sock, resp, timeout_ms)) {
    Stop(w);
    return false;
  }
  return true;
}

bool Workers::Exec(int w, int side, const Op& op, Outcome* out, int timeout_ms) {
  std::string req(2, '\0');
  req[0] = static_cast<char>(kExec);
  req[1] = static_cast<char>(side);
  Serialize(op, &req);
  std::string resp;
  if (!Call(workers_[w], req, &resp, timeout_ms)) return false;
  size_t pos = 0;
  *out = Outcome{};
  return Deserialize(resp, &pos, out);
}

bool Workers::CloseAll(int side, int timeout_ms) {
  bool ok = true;
  for (auto& w : workers_) {
    std::string req(2, '\0'), resp;
    req[0] = static_cast<char>(kCloseAll);
    req[1] = static_cast<char>(side);
    ok &= Call(w, req, &resp, timeout_ms);
  }
  return ok;
}

}  // namespace pmemfs::difftest
