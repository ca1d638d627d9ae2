// SPDX-License-Identifier: BSD-3-Clause
// metabench: create, stat, rename and unlink N empty files, in one directory or spread
// over D directories, and print operations per second for each phase.
//
//   metabench DIR N [DIRS [create]]   (create: only the create phase, files kept)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string Name(const std::string& dir, long i, long dirs, const char* prefix) {
  std::string d = dirs > 1 ? dir + "/d" + std::to_string(i % dirs) : dir;
  return d + "/" + prefix + std::to_string(i);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: metabench DIR N [DIRS [create]]\n");
    return 2;
  }
  std::string dir = argv[1];
  long n = std::atol(argv[2]);
  long dirs = argc > 3 ? std::atol(argv[3]) : 1;
  bool create_only = argc > 4 && std::string(argv[4]) == "create";
  for (long d = 0; dirs > 1 && d < dirs; ++d) mkdir((dir + "/d" + std::to_string(d)).c_str(), 0755);

  auto phase = [&](const char* what, auto&& op) {
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) {
      if (!op(i)) {
        std::perror(what);
        std::exit(1);
      }
    }
    double s = Seconds(t0);
    std::printf("%-7s %8ld files %8.3f s %10.0f ops/s\n", what, n, s, n / s);
  };
  phase("create", [&](long i) {
    int fd = open(Name(dir, i, dirs, "f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    return fd >= 0 && close(fd) == 0;
  });
  if (create_only) return 0;
  phase("stat", [&](long i) {
    struct stat st;
    return stat(Name(dir, i, dirs, "f").c_str(), &st) == 0;
  });
  phase("rename", [&](long i) { return rename(Name(dir, i, dirs, "f").c_str(), Name(dir, i, dirs, "g").c_str()) == 0; });
  phase("unlink", [&](long i) { return unlink(Name(dir, i, dirs, "g").c_str()) == 0; });
  return 0;
}
