// The one sandbox-id rule every user of the id shares (cgroup leaf, jail root, MCS
// registry, netsetup's record and tap name).
#include "base/sandbox_id.hpp"

#include <gtest/gtest.h>

#include <string>

namespace stockade {
namespace {

// The refusal names the id (printable) and contains `rule`.
void expect_id_refused(std::string_view id, std::string_view shown, std::string_view rule) {
    auto r = check_sandbox_id(id);
    ASSERT_FALSE(r) << "accepted '" << id << "'";
    const std::string& msg = r.error().message;
    EXPECT_EQ(msg.rfind("sandbox id", 0), 0u) << msg;
    EXPECT_NE(msg.find(shown), std::string::npos) << msg;
    EXPECT_NE(msg.find(rule), std::string::npos) << msg;
}

TEST(base_sandbox_id, AcceptsOrdinaryNames) {
    for (const char* ok :
         {"sb-1", "A.b_c-9", "sb0", "web-1", "a.b_c", "0", "x_", "x.", "x-", "sb-0123456789ab"})
        EXPECT_TRUE(check_sandbox_id(ok)) << ok;
    EXPECT_TRUE(check_sandbox_id(std::string(kMaxSandboxIdLength, 'x')));
}

TEST(base_sandbox_id, RefusesEmptyAndTooLong) {
    expect_id_refused("", "sandbox id", "cannot be empty");
    const std::string long_id(kMaxSandboxIdLength + 1, 'a');
    expect_id_refused(long_id, long_id, "65 bytes, longer than the limit of 64");
}

TEST(base_sandbox_id, MustStartWithALetterOrDigit) {
    // ".", ".." and "../x" would be paths of their own, ".x" a hidden file that the network
    // records' listing skips, "-x" an option to any tool, "_x" is refused alike: one rule.
    for (const char* bad : {".", "..", "../etc", ".x", "-x", "_x", "-", "_"})
        expect_id_refused(bad, fmt::format("'{}'", bad), "must start with a letter or digit");
}

TEST(base_sandbox_id, OnlyLettersDigitsUnderscoreDotDash) {
    expect_id_refused("a/b", "'a/b'", "contains '/'");
    expect_id_refused("a b", "'a b'", "contains ' '");
    expect_id_refused("a:b", "'a:b'", "contains ':'");
    expect_id_refused("tap%d", "'tap%d'", "contains '%'");
    // Bytes outside printable ASCII are shown escaped, so the message stays one line.
    expect_id_refused("x\n", "'x\\x0a'", "contains '\\x0a'");
    expect_id_refused(std::string_view("a\0b", 3), "'a\\x00b'", "contains '\\x00'");
    expect_id_refused("t\xc3\xa9", "'t\\xc3\\xa9'", "contains '\\xc3'");
    expect_id_refused("a\\b", "'a\\x5cb'", "contains '\\x5c'");
}

}  // namespace
}  // namespace stockade
