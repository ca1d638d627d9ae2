// SPDX-License-Identifier: BSD-3-Clause
// Command-line conventions of the installed commands (issue 16): --help and --version on
// every command, fsck.pmemfs's fsck(8) options and exit codes (-p/-a preen, -f, usage 16),
// messages that name the problem (a region that is not a regular file or device-dax, no
// "unmounted" after a mount that never happened, the journal line only when there is
// something in the journal), and pmemfs-info (label, counts, journal states, --json).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/version.h"
#include "extent/format.h"
#include "extent/superblock.h"
#include "pmem/pmem2_region.h"
#include "tools/tools_fixture.h"

namespace pmemfs::testing {
namespace {

// The on-media format version pmemfs-info must print ("MAJOR.MINOR").
std::string FormatVersion() { return std::to_string(format::kMajor) + "." + std::to_string(format::kMinor); }

const char* const kCommands[] = {"pmemfs", "mkfs.pmemfs", "fsck.pmemfs", "fsck.fuse.pmemfs", "pmemfs-info"};

TEST(CommandLineTest, EveryCommandAnswersHelpAndVersionOnStdout) {
  for (const char* c : kCommands) {
    CommandResult help = Sh(Bin(c) + " --help 2>/dev/null");
    EXPECT_EQ(help.status, 0) << c;
    EXPECT_EQ(help.output.rfind("usage: ", 0), 0u) << c << ": " << help.output;
    CommandResult err = Sh(Bin(c) + " --help >/dev/null");
    EXPECT_EQ(err.output, "") << c << " wrote to stderr";
    CommandResult version = Sh(Bin(c) + " --version 2>/dev/null");
    EXPECT_EQ(version.status, 0) << c;
    EXPECT_NE(version.output.find(std::string(" ") + PMEMFS_VERSION + "\n"), std::string::npos) << c << ": " << version.output;
    EXPECT_EQ(Sh(Bin(c) + " -V 2>/dev/null").output, version.output) << c;
  }
}

TEST(CommandLineTest, FsckUsageErrorsExit16) {
  EXPECT_EQ(Sh(Bin("fsck.pmemfs")).status, 16);
  EXPECT_EQ(Sh(Bin("fsck.pmemfs") + " --no-such-option x").status, 16);
  CommandResult both = Sh(Bin("fsck.pmemfs") + " -n -y /nonexistent");
  EXPECT_EQ(both.status, 16);
  EXPECT_NE(both.output.find("only one of -n, -y and -p/-a"), std::string::npos) << both.output;
  EXPECT_EQ(Sh(Bin("fsck.pmemfs") + " -a -y /nonexistent").status, 16);
  EXPECT_EQ(Sh(Bin("fsck.pmemfs") + " -p -a /nonexistent").status, 8) << "-p and -a are the same mode";
}

class FsckPreenTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(m_.Mkfs().status, 0); }
  PmemfsMount m_{64ull << 20};
};

TEST_F(FsckPreenTest, PreenRepairsAndPrintsOneSummaryLinePerRegion) {
  for (const char* mode : {"-p", "-a", "-p -f", "-f -a"}) {
    CommandResult clean = m_.Fsck(mode);
    EXPECT_EQ(clean.status, 0) << mode << ": " << clean.output;
    EXPECT_EQ(clean.output, m_.region() + ": 0 problems found, 0 fixed -> clean\n") << mode;
  }
  // Damage the superblock copy in block 1: preening repairs it (exit 1), as -y would.
  {
    auto r = pmem::Pmem2Region::Open(m_.region(), {.read_only = false, .lock = true});
    ASSERT_TRUE(r.ok());
    std::memset((*r)->base() + extent::kSuperblockCopyOff, 0x5a, 64);
    (*r)->Persist(extent::kSuperblockCopyOff, 64);
  }
  EXPECT_EQ(m_.Fsck("-n").status, 4);
  CommandResult preen = m_.Fsck("-p");
  EXPECT_EQ(preen.status, 1) << preen.output;
  EXPECT_NE(preen.output.find(m_.region() + ": superblock copy in block 1"), std::string::npos) << preen.output;
  EXPECT_EQ(preen.output.find("note:"), std::string::npos) << preen.output;
  EXPECT_EQ(m_.Fsck("-n").status, 0);
}

TEST_F(FsckPreenTest, FsckFuseNameIsTheSameChecker) {
  CommandResult r = Sh(Bin("fsck.fuse.pmemfs") + " -a " + m_.region());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("0 problems found"), std::string::npos) << r.output;
}

// The journal note appears when there is something in the journal, and "replayed" only
// when fsck replayed something: not after a clean unmount, not on a second -y.
TEST_F(FsckPreenTest, JournalLineOnlyWhenTheJournalHoldsATransaction) {
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  ASSERT_TRUE(WriteFile(m_.Path("f"), "data"));
  ASSERT_EQ(m_.Unmount(), 0);
  for (const char* mode : {"-n", "-y"}) {
    CommandResult r = m_.Fsck(mode);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.find("journal"), std::string::npos) << mode << " after a clean unmount: " << r.output;
  }
  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  ASSERT_TRUE(WriteFile(m_.Path("g"), "more"));
  m_.Kill();
  CommandResult pending = m_.Fsck("-n");
  EXPECT_NE(pending.output.find("journal: a transaction is pending"), std::string::npos) << pending.output;
  CommandResult replay = m_.Fsck("-y");
  EXPECT_NE(replay.output.find("journal: replayed"), std::string::npos) << replay.output;
  for (const char* mode : {"-y", "-n"}) {
    CommandResult again = m_.Fsck(mode);
    EXPECT_EQ(again.status, 0) << again.output;
    EXPECT_EQ(again.output.find("journal"), std::string::npos) << mode << " after a replay: " << again.output;
  }
}

TEST(RegionPathTest, NotARegionIsNamedWithTheFix) {
  const std::string dev_null_msg = "/dev/null is a character device that is not a device-dax";
  PmemfsMount m{64ull << 20};
  struct Case {
    std::string cmd;
    int status;
  } cases[] = {{Bin("pmemfs") + " /dev/null " + m.dir() + " -f", 1},
               {Bin("fsck.pmemfs") + " -n /dev/null", 8},
               {Bin("mkfs.pmemfs") + " /dev/null", 1},
               {Bin("pmemfs-info") + " /dev/null", 1}};
  for (const Case& c : cases) {
    CommandResult r = Sh("timeout 10 " + c.cmd);
    EXPECT_EQ(r.status, c.status) << c.cmd << ": " << r.output;
    EXPECT_NE(r.output.find(dev_null_msg), std::string::npos) << c.cmd << ": " << r.output;
    EXPECT_EQ(r.output.find("pmem2"), std::string::npos) << c.cmd << ": " << r.output;
    EXPECT_EQ(r.output.find("readable and writable by every user"), std::string::npos) << "not a region: no warning";
  }
  CommandResult dir = Sh(Bin("fsck.pmemfs") + " " + m.dir());
  EXPECT_EQ(dir.status, 8);
  EXPECT_NE(dir.output.find(m.dir() + " is a directory; a region is a device-dax"), std::string::npos) << dir.output;
  ASSERT_EQ(Sh("truncate -s 64M " + m.dir() + "/empty").status, 0);
  CommandResult empty = Sh(Bin("fsck.pmemfs") + " -n " + m.dir() + "/empty");
  EXPECT_EQ(empty.status, 8);
  EXPECT_EQ(empty.output, "fsck.pmemfs: " + m.dir() + "/empty holds no pmemfs filesystem (no pmemfs signature anywhere); mkfs.pmemfs creates one\n");
  CommandResult missing = Sh(Bin("pmemfs-info") + " " + m.dir() + "/none");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find(m.dir() + "/none does not exist"), std::string::npos) << missing.output;
}

TEST(UnmountedLogTest, OnlyAfterAMountThatHappened) {
  PmemfsMount m{64ull << 20};
  ASSERT_EQ(m.Mkfs().status, 0);
  // A FUSE option libfuse rejects: the session is never created, nothing is mounted.
  CommandResult bad = Sh("timeout 10 " + Bin("pmemfs") + " " + m.region() + " " + m.mnt() + " -f -o no_such_fuse_option");
  EXPECT_NE(bad.status, 0) << bad.output;
  EXPECT_EQ(bad.output.find("unmounted"), std::string::npos) << bad.output;
  // A real mount says it.
  ASSERT_TRUE(m.Mount()) << m.last_output();
  ASSERT_EQ(m.Unmount(), 0);
  EXPECT_NE(m.last_output().find("pmemfs on " + m.mnt() + " unmounted"), std::string::npos) << m.last_output();
}

class InfoTest : public ::testing::Test {
 protected:
  CommandResult Info(const std::string& args = "") { return Sh(Bin("pmemfs-info") + " " + args + " " + m_.region()); }
  // The value of "key:" in the text output.
  static std::string Field(const std::string& out, const std::string& key) {
    size_t at = out.find("\n" + key + ":");
    if (at == std::string::npos && out.rfind(key + ":", 0) == 0) at = 0;
    else if (at != std::string::npos) ++at;
    else return "";
    size_t v = out.find_first_not_of(' ', at + key.size() + 1);
    return out.substr(v, out.find('\n', v) - v);
  }
  PmemfsMount m_{64ull << 20};
};

TEST_F(InfoTest, LabelCountsAndJournalStates) {
  ASSERT_EQ(m_.Mkfs("-L 'my data'").status, 0);
  CommandResult fresh = Info();
  ASSERT_EQ(fresh.status, 0) << fresh.output;
  EXPECT_EQ(Field(fresh.output, "label"), "my data");
  EXPECT_EQ(Field(fresh.output, "format version"), FormatVersion());
  EXPECT_EQ(Field(fresh.output, "inodes"), "4095 total, 1 used, 4094 free") << fresh.output;
  EXPECT_EQ(Field(fresh.output, "journal"), "262144 bytes (256 KiB), clean");
  EXPECT_EQ(Field(fresh.output, "in use"), "no");
  EXPECT_EQ(Field(fresh.output, "superblock"), "primary");
  auto sb_uuid = [&] {
    auto r = pmem::Pmem2Region::Open(m_.region(), {.read_only = true, .lock = false});
    return extent::UuidString(extent::ReadSuperblock(**r)->sb.uuid);
  };
  EXPECT_EQ(Field(fresh.output, "uuid"), sb_uuid());

  ASSERT_TRUE(m_.Mount()) << m_.last_output();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(WriteFile(m_.Path("f" + std::to_string(i)), std::string(8192, 'x')));
  CommandResult live = Info();
  EXPECT_EQ(live.status, 0) << live.output;
  EXPECT_EQ(Field(live.output, "inodes"), "4095 total, 11 used, 4084 free") << live.output;
  EXPECT_NE(Field(live.output, "journal").find("live (the filesystem is in use)"), std::string::npos) << live.output;
  EXPECT_EQ(Field(live.output, "in use").rfind("yes", 0), 0u) << live.output;
  // Free blocks went down by at least the 20 data blocks written.
  auto free_blocks = [&](const std::string& out) {
    std::string b = Field(out, "blocks");
    return std::stoull(b.substr(b.rfind(", ") + 2));
  };
  EXPECT_GE(free_blocks(fresh.output), free_blocks(live.output) + 20);

  m_.Kill();  // unclean: the journal holds the last transaction
  CommandResult crashed = Info();
  EXPECT_NE(Field(crashed.output, "journal").find("needs replay"), std::string::npos) << crashed.output;
  EXPECT_EQ(Field(crashed.output, "in use"), "no");
  EXPECT_EQ(Field(crashed.output, "inodes"), "4095 total, 11 used, 4084 free") << crashed.output;
  ASSERT_EQ(m_.Fsck("-y").status, 0);
  EXPECT_NE(Field(Info().output, "journal").find("clean"), std::string::npos);
}

TEST_F(InfoTest, JsonHasTheSameFacts) {
  ASSERT_EQ(m_.Mkfs("-L json\\\"label").status, 0);
  CommandResult j = Info("--json");
  ASSERT_EQ(j.status, 0) << j.output;
  EXPECT_NE(j.output.find("\"label\": \"json\\\"label\""), std::string::npos) << j.output;
  EXPECT_NE(j.output.find("\"format_version\": \"" + FormatVersion() + "\""), std::string::npos) << j.output;
  EXPECT_NE(j.output.find("\"inodes\": {\"total\": 4095, \"used\": 1, \"free\": 4094}"), std::string::npos) << j.output;
  EXPECT_NE(j.output.find("\"state\": \"clean\""), std::string::npos) << j.output;
  EXPECT_NE(j.output.find("\"in_use\": false"), std::string::npos) << j.output;
  // A JSON parser agrees, where one is installed.
  if (Sh("command -v python3").status == 0) {
    CommandResult parsed = Sh(Bin("pmemfs-info") + " --json " + m_.region() +
                              " | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"label\"], d[\"blocks\"][\"total\"])'");
    EXPECT_EQ(parsed.output, "json\"label 16384\n");
  }
}

TEST_F(InfoTest, DamagedPrimaryAndNoFilesystem) {
  ASSERT_EQ(m_.Mkfs("-L keep").status, 0);
  {
    auto r = pmem::Pmem2Region::Open(m_.region(), {.read_only = false, .lock = true});
    ASSERT_TRUE(r.ok());
    (*r)->base()[100] ^= 0xff;  // inside the primary superblock: its crc fails
    (*r)->Persist(100, 1);
  }
  CommandResult damaged = Info();
  EXPECT_EQ(damaged.status, 0) << damaged.output;
  EXPECT_EQ(Field(damaged.output, "superblock"), "copy in block 1 (the primary is damaged: run fsck.pmemfs -y)");
  EXPECT_EQ(Field(damaged.output, "label"), "keep");

  // A sparse file without pmemfs: refused, and no hole is read (a read through the mapping
  // would allocate the holes of a tmpfs file).
  const std::string empty = m_.dir() + "/empty";
  ASSERT_EQ(Sh("truncate -s 64M " + empty).status, 0);
  FileState before = StateOf(empty);
  CommandResult none = Sh(Bin("pmemfs-info") + " " + empty);
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.output.find("holds no pmemfs filesystem (mkfs.pmemfs creates one)"), std::string::npos) << none.output;
  EXPECT_EQ(StateOf(empty), before);
}

}  // namespace
}  // namespace pmemfs::testing
