// The cgroup leaf's checks that need no cgroup2 mount of ours; creation, limits, joining and
// removal are proven as root in the lab (tests/lab/policy/cgroup_test.cpp).
#include <gtest/gtest.h>

#include <filesystem>

#include "policy/cgroup.hpp"

namespace stockade::policy {
namespace {

TEST(policy_cgroup_leaf, RefusesAParentOutsideCgroup2) {
    CgroupPolicy limits;
    limits.parent = (std::filesystem::temp_directory_path() / "not-a-cgroup").string();
    limits.pids_max = 10;
    auto leaf = CgroupLeaf::create(limits, "sb-1");
    ASSERT_FALSE(leaf);
    EXPECT_NE(leaf.error().message.find("not on a cgroup2 file system"), std::string::npos)
        << leaf.error().message;
    EXPECT_FALSE(std::filesystem::exists(limits.parent)) << "nothing created on refusal";
}

TEST(policy_cgroup_leaf, RefusesABadSandboxId) {
    CgroupPolicy limits;
    limits.parent = "/sys/fs/cgroup/stockade";
    auto leaf = CgroupLeaf::create(limits, "../../etc");
    ASSERT_FALSE(leaf);
    EXPECT_NE(leaf.error().message.find("sandbox id"), std::string::npos);
}

}  // namespace
}  // namespace stockade::policy
