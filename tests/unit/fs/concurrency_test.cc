// SPDX-License-Identifier: BSD-3-Clause
// The FileSystem under concurrent callers, as the FUSE workers call it: threads each with
// private files (whose contents they check against a model) and shared directories where
// they create, link, rename (across directories, over each other, directories too),
// remove, list and change xattrs at the same time, with open-unlinked files in between.
// Afterwards every private file holds what its model says, every kernel reference is given
// back, and fsck finds nothing. Run under ThreadSanitizer by scripts/test.sh, which also
// checks the lock order (a deadlock hangs the test: ctest's timeout catches it).
#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "fs/check.h"
#include "testutil.h"
#include "unit/fs/fs_fixture.h"

namespace pmemfs::fs {
namespace {

using format::kRootIno;

class ConcurrencyTest : public FsTest {
 protected:
  // Kernel references taken by a thread (Lookup, Mknod, ReadDir plus), given back at the
  // end as the kernel's FORGETs would.
  struct Refs {
    std::map<uint64_t, uint64_t> n;
    void Take(uint64_t ino) { ++n[ino]; }
  };
};

TEST_F(ConcurrencyTest, ThreadsOnPrivateAndSharedDirectoriesLeaveAConsistentFilesystem) {
  spdlog::set_level(spdlog::level::err);
  extent::MkfsOptions opts;
  opts.inode_count = 20000;
  Format(256ull << 20, opts);
  const char* env = std::getenv("PMEMFS_CONCURRENCY_OPS");
  const int ops = env ? std::atoi(env) : 3000;
  constexpr int kThreads = 4;
  auto seed_rng = pmemfs::testing::SeededRng();
  uint64_t a = Mkdir(kRootIno, "A"), b = Mkdir(kRootIno, "B"), s = Mkdir(kRootIno, "S");
  Mkdir(a, "sub");
  std::vector<uint64_t> own(kThreads);
  for (int t = 0; t < kThreads; ++t) own[t] = Mkdir(kRootIno, "t" + std::to_string(t));
  std::vector<Refs> refs(kThreads);
  std::vector<std::map<std::string, std::string>> models(kThreads);
  std::atomic<int> failures{0};
  std::mutex fail_mu;
  std::string first_failure;
  auto fail = [&](const std::string& what) {
    if (failures++ == 0) {
      std::lock_guard lk(fail_mu);
      first_failure = what;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t, seed = seed_rng()] {
      std::mt19937_64 rng(seed);
      Refs& r = refs[t];
      auto& model = models[t];
      Ctx ctx{0, 0, 1};
      auto name = [&](const char* p, int range) { return p + std::to_string(rng() % range); };
      auto lookup = [&](uint64_t dir, const std::string& n) -> uint64_t {
        auto e = fs_->Lookup(dir, n);
        if (!e.ok()) return 0;
        r.Take(e->ino);
        return e->ino;
      };
      for (int i = 0; i < ops && failures == 0; ++i) {
        switch (rng() % 16) {
          case 0: case 1: case 2: {  // private file: write at a random place, check it
            std::string n = name("f", 8);
            uint64_t ino = lookup(own[t], n);
            if (!ino) {
              auto e = fs_->Mknod(ctx, own[t], n, S_IFREG | 0644, 0);
              if (!e.ok()) { fail("mknod " + n + ": " + e.error().Message()); break; }
              r.Take(e->ino);
              ino = e->ino;
              model[n] = "";
            }
            std::string& m = model[n];
            uint64_t off = rng() % (m.size() + 20000);
            std::string data(1 + rng() % 9000, char('a' + rng() % 26));
            auto w = fs_->Write(ino, off, data.data(), data.size());
            if (!w.ok() || *w != data.size()) { fail("write " + n); break; }
            if (m.size() < off + data.size()) m.resize(off + data.size(), '\0');
            m.replace(off, data.size(), data);
            std::string back;
            Status st = fs_->Read(ino, 0, m.size() + 100, [&](const std::vector<FileSystem::Piece>& pieces) {
              for (const auto& p : pieces) back.append(p.data ? static_cast<const char*>(p.data) : std::string(p.len, '\0').data(), p.len);
            });
            if (!st.ok() || back != m) fail("read back " + n + " differs");
            break;
          }
          case 3: {  // private file: truncate
            std::string n = name("f", 8);
            uint64_t ino = lookup(own[t], n);
            if (!ino) break;
            SetAttrIn in;
            in.mask = kSetSize;
            in.size = rng() % 30000;
            if (!fs_->SetAttr(ctx, ino, in).ok()) { fail("truncate"); break; }
            model[n].resize(in.size, '\0');
            break;
          }
          case 4: {  // private file: open, unlink, use, release (an orphan meanwhile)
            std::string n = name("f", 8);
            uint64_t ino = lookup(own[t], n);
            if (!ino) break;
            if (!fs_->Open(ino, O_RDWR).ok()) { fail("open"); break; }
            if (!fs_->Unlink(own[t], n).ok()) { fail("unlink " + n); break; }
            std::string data(5000, 'o');
            if (!fs_->Write(ino, 0, data.data(), data.size()).ok()) fail("write to an open unlinked file");
            fs_->Release(ino);
            model.erase(n);
            break;
          }
          case 5: case 6: {  // shared: create in A or B
            uint64_t dir = rng() % 2 ? a : b;
            auto e = fs_->Mknod(ctx, dir, name("x", 40), S_IFREG | 0644, 0);
            if (e.ok()) r.Take(e->ino);
            else if (e.code() != EEXIST) fail("shared mknod: " + e.error().Message());
            break;
          }
          case 7: case 8: {  // shared: rename across A and B, replacing or not
            uint64_t from = rng() % 2 ? a : b, to = rng() % 2 ? a : b;
            Status st = fs_->Rename(from, name("x", 40), to, name("x", 40), rng() % 4 == 0 ? RENAME_NOREPLACE : 0);
            if (!st.ok() && st.code() != ENOENT && st.code() != EEXIST) fail("rename: " + st.error().Message());
            break;
          }
          case 9: {  // shared: move the subdirectory between A and B (ancestry, lock order)
            uint64_t from = rng() % 2 ? a : b, to = from == a ? b : a;
            Status st = fs_->Rename(from, "sub", to, "sub", RENAME_NOREPLACE);
            if (!st.ok() && st.code() != ENOENT && st.code() != EEXIST) fail("dir rename: " + st.error().Message());
            break;
          }
          case 10: {  // shared: unlink
            uint64_t dir = rng() % 2 ? a : b;
            Status st = fs_->Unlink(dir, name("x", 40));
            if (!st.ok() && st.code() != ENOENT) fail("shared unlink: " + st.error().Message());
            break;
          }
          case 11: {  // shared: link into S, remove from S
            uint64_t ino = lookup(rng() % 2 ? a : b, name("x", 40));
            if (!ino) break;
            std::string n = name("l", 20);
            auto e = fs_->Link(ino, s, n);
            if (e.ok()) r.Take(e->ino);
            else if (e.code() != EEXIST && e.code() != ENOENT) fail("link: " + e.error().Message());
            Status st = fs_->Unlink(s, name("l", 20));
            if (!st.ok() && st.code() != ENOENT) fail("unlink link: " + st.error().Message());
            break;
          }
          case 12: {  // shared: directories come and go in S, and in the moving subdirectory
            uint64_t dir = rng() % 2 ? s : lookup(rng() % 2 ? a : b, "sub");
            if (!dir) break;
            std::string n = name("d", 10);
            auto e = fs_->Mkdir(ctx, dir, n, 0755);
            if (e.ok()) r.Take(e->ino);
            Status st = fs_->Rmdir(dir, name("d", 10));
            if (!st.ok() && st.code() != ENOENT && st.code() != ENOTEMPTY) fail("rmdir: " + st.error().Message());
            break;
          }
          case 13: {  // shared: list with attributes (locks every entry's inode)
            uint64_t dir = rng() % 3 == 0 ? s : rng() % 2 ? a : b;
            Status st = fs_->ReadDir(dir, 0, true, [&](std::string_view n, const Entry& e, uint64_t) {
              if (n != "." && n != "..") r.Take(e.ino);
              return true;
            });
            if (!st.ok()) fail("readdir: " + st.error().Message());
            break;
          }
          case 14: {  // shared: xattrs
            uint64_t ino = lookup(rng() % 2 ? a : b, name("x", 40));
            if (!ino) break;
            Status st = rng() % 3 ? fs_->SetXattr(ctx, ino, "user.k" + std::to_string(t), std::string(rng() % 6000, 'v'), 0)
                                  : fs_->RemoveXattr(ctx, ino, "user.k" + std::to_string(t));
            if (!st.ok() && st.code() != ENODATA && st.code() != ESTALE) fail("xattr: " + st.error().Message());
            break;
          }
          default: {  // shared: exchange two names
            Status st = fs_->Rename(a, name("x", 40), b, name("x", 40), RENAME_EXCHANGE);
            if (!st.ok() && st.code() != ENOENT) fail("exchange: " + st.error().Message());
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0) << first_failure;
  // The kernel forgets everything: removed files are freed now.
  for (const Refs& r : refs)
    for (const auto& [ino, n] : r.n) fs_->Forget(ino, n);
  Remount();
  for (int t = 0; t < kThreads; ++t) {
    for (const auto& [n, m] : models[t]) {
      auto e = fs_->Lookup(own[t], n);
      ASSERT_TRUE(e.ok()) << n;
      EXPECT_EQ(Read(e->ino, 0, m.size() + 1), m) << "thread " << t << " file " << n;
    }
  }
  fs_.reset();
  CheckOptions o;
  std::string report;
  o.report = [&](const std::string& l) { report += l + "\n"; };
  CheckResult res = Check(*region_, o);
  EXPECT_EQ(res.problems, 0u) << report;
}

}  // namespace
}  // namespace pmemfs::fs
