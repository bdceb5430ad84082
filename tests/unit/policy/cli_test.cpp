// `stockade policy check|show`.
#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "policy/cli.hpp"

namespace stockade::policy {
namespace {

const std::string kExamples = std::string(STOCKADE_SOURCE_DIR) + "/policy/examples";

struct Run {
    int status;
    std::string out, err;
};

Run cli(std::vector<std::string> args, const PolicyCliHooks& hooks = {}) {
    std::ostringstream out, err;
    int st = policy_cli(args, hooks, out, err);
    return {st, out.str(), err.str()};
}

TEST(policy_cli, CheckAcceptsAValidFile) {
    auto r = cli({"check", kExamples + "/full.json"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("valid policy"), std::string::npos);
    EXPECT_TRUE(r.err.empty());
}

TEST(policy_cli, CheckRejectsWith125AndThePath) {
    auto path = std::filesystem::temp_directory_path() / "stockade-cli-bad.json";
    std::ofstream(path) << R"({"version": 1, "cgroup": {"memory_max": 12.5}})";
    auto r = cli({"check", path.string()});
    std::filesystem::remove(path);
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find(path.string() + ": policy: /cgroup/memory_max: expected a string like "
                                         "\"512M\", got 12.5"),
              std::string::npos)
        << r.err;
}

TEST(policy_cli, UsageErrorsAre125) {
    EXPECT_EQ(cli({}).status, 125);
    EXPECT_EQ(cli({"check"}).status, 125);
    EXPECT_EQ(cli({"show", "a", "b"}).status, 125);
    auto r = cli({"frobnicate"});
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find("unknown command \"frobnicate\""), std::string::npos);
    EXPECT_EQ(cli({"--help"}).status, 0);
}

TEST(policy_cli, ShowPrintsTheDefaultsAsAPolicyThatParsesBack) {
    auto r = cli({"show"});
    ASSERT_EQ(r.status, 0) << r.err;
    auto doc = nlohmann::json::parse(r.out);
    auto back = parse_policy(doc.at("policy").dump());
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, default_policy());
    EXPECT_TRUE(doc.at("seccomp_profiles").empty());
}

TEST(policy_cli, ShowAppliesTheFileAndListsTheRunnersProfiles) {
    PolicyCliHooks hooks;
    hooks.seccomp_profiles = [](const Policy& p) {
        return std::vector<SeccompProfile>{
            SeccompProfile("event-loop", p.seccomp_mode).baseline().allow({SYS_epoll_wait})};
    };
    auto r = cli({"show", kExamples + "/debug-log.json"}, hooks);
    ASSERT_EQ(r.status, 0) << r.err;
    auto doc = nlohmann::json::parse(r.out);
    EXPECT_EQ(doc["policy"]["seccomp"]["mode"], "log");
    EXPECT_EQ(doc["policy"]["selinux"]["mode"], "off");
    ASSERT_EQ(doc["seccomp_profiles"].size(), 1u);
    const auto& prof = doc["seccomp_profiles"][0];
    EXPECT_EQ(prof["name"], "event-loop");
    EXPECT_EQ(prof["mode"], "log") << "profiles follow the policy's mode";
    EXPECT_GT(prof["bpf_instructions"].get<int>(), 0);
    auto allow = prof["allow"].get<std::vector<std::string>>();
    EXPECT_NE(std::find(allow.begin(), allow.end(), "epoll_wait"), allow.end());
}

TEST(policy_cli, ShowRejectsABadFile) {
    auto r = cli({"show", "/nonexistent.json"});
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find("/nonexistent.json"), std::string::npos);
    EXPECT_TRUE(r.out.empty());
}

}  // namespace
}  // namespace stockade::policy
