// The undo stack behind rollback and down: newest first, keeps going past failures.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "netsetup/undo.hpp"

namespace stockade::net {
namespace {

TEST(netsetup_undo, UnwindsNewestFirst) {
    UndoStack<std::string> stack;
    for (const char* s : {"bridge", "uplink port", "uplink vlan", "tap"})
        stack.push(s);
    std::vector<std::string> order;
    auto failed = stack.unwind([&](const std::string& s) -> Result<> {
        order.push_back(s);
        return {};
    });
    EXPECT_TRUE(failed.empty());
    EXPECT_EQ(order, (std::vector<std::string>{"tap", "uplink vlan", "uplink port", "bridge"}));
    EXPECT_TRUE(stack.empty());
}

TEST(netsetup_undo, KeepsGoingPastFailuresAndReportsThemOldestFirst) {
    UndoStack<int> stack(std::vector<int>{1, 2, 3, 4, 5});
    std::vector<int> order;
    auto failed = stack.unwind([&](int i) -> Result<> {
        order.push_back(i);
        if (i == 2 || i == 4) return fail("cannot undo {}", i);
        return {};
    });
    EXPECT_EQ(order, (std::vector<int>{5, 4, 3, 2, 1}));
    ASSERT_EQ(failed.size(), 2u);
    EXPECT_EQ(failed[0].item, 2);
    EXPECT_EQ(failed[0].error.message, "cannot undo 2");
    EXPECT_EQ(failed[1].item, 4);
    EXPECT_TRUE(stack.empty());
}

TEST(netsetup_undo, EmptyUnwindDoesNothing) {
    UndoStack<int> stack;
    int calls = 0;
    auto failed = stack.unwind([&](int) -> Result<> {
        ++calls;
        return {};
    });
    EXPECT_EQ(calls, 0);
    EXPECT_TRUE(failed.empty());
}

}  // namespace
}  // namespace stockade::net
