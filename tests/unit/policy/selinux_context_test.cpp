// The SELinux context's pure parts and the MCS category registry; the switch itself needs an
// SELinux kernel and is proven in the lab (tests/lab/policy/selinux_test.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "policy/selinux_context.hpp"
#include "policy/selinux_images.hpp"
#include "tests/support/child.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade::policy {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

TEST(policy_selinux_context, Format) {
    SelinuxPolicy p;
    EXPECT_EQ(sandbox_context(p, McsPair{3, 700}), "system_u:system_r:stockade_t:s0:c3,c700");
}

// sVirt: a read-write image carries the sandbox's categories, a read-only one none (shared).
TEST(policy_selinux_context, ImageContextsFollowTheSandboxs) {
    const std::string sandbox = "system_u:system_r:stockade_t:s0:c3,c700";
    EXPECT_EQ(image_context(sandbox, false), "system_u:object_r:stockade_image_t:s0:c3,c700");
    EXPECT_EQ(image_context(sandbox, true), "system_u:object_r:stockade_image_t:s0");
    EXPECT_EQ(image_context("staff_u:staff_r:other_t:s1:c1,c2", false, "my_image_t"),
              "staff_u:object_r:my_image_t:s1:c1,c2");
    EXPECT_FALSE(image_context("not a context", false));
}

TEST(policy_selinux_context, NoImagesNoLabels) {
    auto labels = ImageLabels::apply({}, "system_u:system_r:stockade_t:s0:c1,c2", {});
    ASSERT_TRUE(labels) << labels.error().message;
    EXPECT_EQ(labels->size(), 0u);
}

TEST(policy_selinux_context, AutoCandidatesAreValidAndDeterministic) {
    std::set<McsPair> firsts;
    for (int i = 0; i < 200; ++i) {
        auto id = fmt::format("sb-{}", i);
        auto a = mcs_candidate(id, 0);
        EXPECT_EQ(a, mcs_candidate(id, 0)) << "same id, same first pair";
        EXPECT_LT(a.low, a.high);
        EXPECT_LT(a.high, kMcsCategories);
        firsts.insert(a);
        for (std::uint32_t probe = 1; probe < 5; ++probe) {
            auto b = mcs_candidate(id, probe);
            EXPECT_LT(b.low, b.high);
            EXPECT_LT(b.high, kMcsCategories);
        }
    }
    EXPECT_GT(firsts.size(), 190u) << "ids spread over the pairs";
}

TEST(policy_mcs_registry, LiveReservationsNeverShareAPair) {
    TempDir reg;
    auto a = McsReservation::reserve_auto(reg.path.string(), "sb-same");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->pair(), mcs_candidate("sb-same", 0));
    // The same id again while the first lives: the next free pair.
    auto b = McsReservation::reserve_auto(reg.path.string(), "sb-same");
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_NE(a->pair(), b->pair());
    // A fixed pair held by a live sandbox is refused.
    auto c = McsReservation::reserve(reg.path.string(), a->pair());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("held by another sandbox"), std::string::npos);
    // Another process sees the lock too (flock is per open file, across processes).
    const auto held = a->pair();
    int st = test::run_in_child([&] {
        auto r = McsReservation::reserve(reg.path.string(), held);
        return r ? 1 : 0;
    });
    EXPECT_TRUE(test::exited_ok(st)) << test::describe_status(st);
    // Released: the file goes and the pair is free again.
    const auto path = reg.path / fmt::format("c{},c{}", held.low, held.high);
    EXPECT_TRUE(fs::exists(path));
    { auto gone = std::move(*a); }
    EXPECT_FALSE(fs::exists(path));
    auto d = McsReservation::reserve(reg.path.string(), held);
    EXPECT_TRUE(d) << d.error().message;
}

// What an image label's categories say about its sandbox (policy/selinux_images.hpp): held
// while the reservation lives, in this process or another; not once it is gone, nor for a
// pair a killed supervisor left, nor for text that names no pair.
TEST(policy_mcs_registry, HeldSaysWhetherALiveSandboxHoldsAPair) {
    TempDir reg;
    const std::string dir = reg.path.string();
    auto a = McsReservation::reserve_auto(dir, "sb-held");
    ASSERT_TRUE(a) << a.error().message;
    const std::string name = fmt::format("c{},c{}", a->pair().low, a->pair().high);
    EXPECT_TRUE(McsReservation::held(dir, name));
    int st = test::run_in_child([&] { return McsReservation::held(dir, name) ? 0 : 1; });
    EXPECT_TRUE(test::exited_ok(st)) << "another process sees it held";
    for (const char* text : {"", "c1", "c5,c3", "c1,c2x", "c1,c2000", "s0:c1,c2"})
        EXPECT_FALSE(McsReservation::held(dir, text)) << text;
    EXPECT_FALSE(McsReservation::held(dir, "c7,c9")) << "never reserved";
    const auto stale = mcs_candidate("sb-killed", 0);
    st = test::run_in_child([&]() -> int {
        auto r = McsReservation::reserve_auto(dir, "sb-killed");
        ::_exit(r ? 0 : 1);  // the file stays, unlocked
    });
    ASSERT_TRUE(test::exited_ok(st));
    EXPECT_FALSE(McsReservation::held(dir, fmt::format("c{},c{}", stale.low, stale.high)));
    { auto gone = std::move(*a); }
    EXPECT_FALSE(McsReservation::held(dir, name));
}

TEST(policy_mcs_registry, StaleFileFromACrashIsReused) {
    TempDir reg;
    auto pair = mcs_candidate("sb-crashed", 0);
    // A sandbox that died without cleaning up leaves its file, unlocked.
    int st = test::run_in_child([&]() -> int {
        auto r = McsReservation::reserve_auto(reg.path.string(), "sb-crashed");
        ::_exit(r ? 0 : 1);  // _exit: no destructor, the file stays
    });
    ASSERT_TRUE(test::exited_ok(st));
    EXPECT_TRUE(fs::exists(reg.path / fmt::format("c{},c{}", pair.low, pair.high)));
    auto again = McsReservation::reserve_auto(reg.path.string(), "sb-crashed");
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->pair(), pair);
}

TEST(policy_selinux_plan, OffMeansNoSwitch) {
    TempDir reg;
    SelinuxPolicy p;
    p.mode = SelinuxMode::off;
    auto plan = plan_sandbox_label(p, "sb-1", reg.path.string());
    ASSERT_TRUE(plan) << plan.error().message;
    EXPECT_FALSE(*plan);
}

TEST(policy_selinux_plan, RequiredRefusesUnlessEnforcing) {
    TempDir reg;
    SelinuxPolicy p;
    p.mode = SelinuxMode::required;
    auto plan = plan_sandbox_label(p, "sb-1", reg.path.string());
    const auto state = selinux_state();
    if (state.enforcing) {
        // An enforcing host: the plan is made (or the module is missing, which is named).
        if (!plan) {
            EXPECT_NE(plan.error().message.find("is not valid in the loaded policy"),
                      std::string::npos)
                << plan.error().message;
        }
    } else {
        ASSERT_FALSE(plan);
        EXPECT_NE(plan.error().message.find("requires it (/selinux/mode \"required\") but it is"),
                  std::string::npos)
            << plan.error().message;
        EXPECT_NE(plan.error().message.find("refusing to start"), std::string::npos);
    }
}

TEST(policy_selinux_plan, IfEnabledOnAHostWithoutSelinuxIsNoSwitch) {
    TempDir reg;
    SelinuxPolicy p;  // if-enabled
    auto plan = plan_sandbox_label(p, "sb-1", reg.path.string());
    if (selinux_state().enabled) {
        if (plan) {
            EXPECT_TRUE(*plan);
        }
    } else {
        ASSERT_TRUE(plan) << plan.error().message;
        EXPECT_FALSE(*plan);
        EXPECT_TRUE(fs::is_empty(reg.path)) << "no categories reserved for nothing";
    }
}

}  // namespace
}  // namespace stockade::policy
