#include <sys/statvfs.h>

#include "mount/mount_fixture.h"

namespace pmemfs::testing {
namespace {

class ImmutableSmokeTest : public MountTest {};

TEST_F(ImmutableSmokeTest, MountIsUsable) {
  struct statvfs sv;
  ASSERT_EQ(::statvfs(m_.mnt().c_str(), &sv), 0);
  EXPECT_GT(sv.f_blocks, 0u);
  ASSERT_TRUE(WriteFile(P("a"), "hello"));
  EXPECT_EQ(ReadFile(P("a")), "hello");
}

}  // namespace
}  // namespace pmemfs::testing
