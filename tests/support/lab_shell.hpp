#pragma once
// A shell command a lab test needs to succeed (setting up bridges, binding drivers): its
// stdout, with a test failure naming the command and its output when it does not exit 0.
#include <gtest/gtest.h>

#include <string>

#include "lab/support/process.hpp"

namespace stockade::test {

inline std::string sh(const std::string& command) {
    auto r = lab::run_process({"/bin/sh", "-c", command});
    EXPECT_EQ(r.status, 0) << command << "\n" << r.describe();
    return r.out;
}

}  // namespace stockade::test
