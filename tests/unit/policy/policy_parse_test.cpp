// The policy file: the documented examples parse (and are the ones the README shows), every
// malformed case is rejected with its JSON path, and the JSON writer round-trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "policy/policy.hpp"

namespace stockade::policy {
namespace {

const std::filesystem::path kExampleDir =
    std::filesystem::path(STOCKADE_SOURCE_DIR) / "policy/examples";

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

TEST(policy_examples, EveryExampleParses) {
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(kExampleDir)) {
        if (entry.path().extension() != ".json") continue;
        ++count;
        auto p = load_policy_file(entry.path());
        EXPECT_TRUE(p) << entry.path() << ": " << p.error().message;
    }
    EXPECT_GE(count, 4) << "the examples directory lost its examples";
}

// The README shows each example verbatim after a marker line; they must not drift apart.
TEST(policy_examples, ReadmeShowsTheExampleFiles) {
    const std::string readme =
        slurp(std::filesystem::path(STOCKADE_SOURCE_DIR) / "policy/README.md");
    std::regex block(R"(<!-- example: ([a-z-]+\.json) -->\n```json\n([\s\S]*?)```)");
    int shown = 0;
    for (std::sregex_iterator it(readme.begin(), readme.end(), block), end; it != end; ++it) {
        ++shown;
        const std::string name = (*it)[1];
        EXPECT_EQ((*it)[2].str(), slurp(kExampleDir / name)) << name << " differs from the README";
    }
    EXPECT_GE(shown, 4);
}

TEST(policy_examples, FullExampleMeansWhatItSays) {
    auto p = load_policy_file(kExampleDir / "full.json");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->uid, 64001u);
    EXPECT_EQ(p->gid, 64001u);
    EXPECT_TRUE(p->namespaces.has(Namespace::net));
    EXPECT_FALSE(p->namespaces.has(Namespace::user));
    ASSERT_EQ(p->jail.binds.size(), 2u);
    EXPECT_FALSE(p->jail.binds[0].writable) << "binds are read-only by default";
    EXPECT_TRUE(p->jail.binds[1].writable);
    EXPECT_EQ(p->cgroup.memory_max, 2ull << 30);
    EXPECT_EQ(p->cgroup.memory_swap_max, 0u);
    EXPECT_EQ(p->cgroup.pids_max, 64u);
    ASSERT_TRUE(p->cgroup.cpu_max);
    EXPECT_EQ(p->cgroup.cpu_max->quota_us, 400000u);
    EXPECT_EQ(p->cgroup.cpu_max->period_us, 100000u);
    ASSERT_EQ(p->cgroup.io_max.size(), 1u);
    EXPECT_EQ(p->cgroup.io_max[0].major, 8u);
    EXPECT_EQ(p->cgroup.io_max[0].rbps, 100ull << 20);
    EXPECT_EQ(p->cgroup.io_max[0].wiops, 2000u);
    EXPECT_EQ(p->rlimits.at(Rlimit::nofile), 512u);
    EXPECT_EQ(p->rlimits.at(Rlimit::fsize), 64ull << 30);
    EXPECT_EQ(p->rlimits.at(Rlimit::memlock), 64u << 10);
    EXPECT_EQ(p->rlimits.at(Rlimit::core), 0u);
    EXPECT_EQ(p->selinux.mode, SelinuxMode::required);
    ASSERT_TRUE(p->selinux.categories);
    EXPECT_EQ(p->selinux.categories->low, 17);
    EXPECT_EQ(p->selinux.categories->high, 942);
    ASSERT_TRUE(p->digests.kernel);
    EXPECT_EQ(to_hex(*p->digests.kernel),
              "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    EXPECT_EQ(p->digests.disks.count("rootfs"), 1u);
    EXPECT_EQ(p->seccomp_mode, SeccompMode::kill);
}

TEST(policy_defaults, MinimalFileIsTheDefaultPolicy) {
    auto p = parse_policy(R"({"version": 1})");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(*p, default_policy());
}

TEST(policy_defaults, AreSecure) {
    const Policy d = default_policy();
    EXPECT_NE(d.uid, 0u);
    EXPECT_NE(d.gid, 0u);
    for (Namespace ns : {Namespace::mount, Namespace::pid, Namespace::ipc, Namespace::uts,
                         Namespace::cgroup, Namespace::net})
        EXPECT_TRUE(d.namespaces.has(ns)) << namespace_name(ns);
    EXPECT_EQ(d.rlimits.at(Rlimit::core), 0u);
    EXPECT_EQ(d.rlimits.at(Rlimit::memlock), 0u);
    EXPECT_TRUE(d.rlimits.contains(Rlimit::nofile));
    EXPECT_EQ(d.seccomp_mode, SeccompMode::kill);
    EXPECT_NE(d.selinux.mode, SelinuxMode::off);
    EXPECT_EQ(d.selinux.type, "stockade_t");
    EXPECT_FALSE(d.jail.mount_proc);
    EXPECT_TRUE(d.jail.binds.empty());
    EXPECT_EQ(d.cgroup.memory_swap_max, 0u);
    EXPECT_TRUE(d.cgroup.pids_max);
    EXPECT_TRUE(d.vfio_devices.empty()) << "no host device may be passed through unless listed";
    EXPECT_FALSE(d.api_socket_gid) << "the control API is root's unless a group is named";
}

TEST(policy_api_socket_gid, IsAGroupIdThatRoundTrips) {
    auto p = parse_policy(R"({"version": 1, "api_socket_gid": 1001})");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->api_socket_gid, 1001u);
    auto again = parse_policy(to_json(*p).dump());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(*again, *p);
}

TEST(policy_vfio_devices, AreCanonicalSortedAndRoundTrip) {
    auto p = parse_policy(
        R"({"version": 1, "vfio_devices": ["0000:81:00.1", "00:1F.3", "0001:00:02.0"]})");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->vfio_devices,
              (std::vector<std::string>{"0000:00:1f.3", "0000:81:00.1", "0001:00:02.0"}));
    auto again = parse_policy(to_json(*p).dump());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(*again, *p);
}

TEST(policy_json, RoundTripsEveryExampleAndTheDefault) {
    std::vector<Policy> policies = {default_policy()};
    for (const auto& entry : std::filesystem::directory_iterator(kExampleDir))
        if (auto p = load_policy_file(entry.path())) policies.push_back(*p);
    for (const auto& p : policies) {
        auto text = to_json(p).dump();
        auto back = parse_policy(text);
        ASSERT_TRUE(back) << text << "\n" << back.error().message;
        EXPECT_EQ(*back, p) << text;
    }
}

TEST(policy_json, UnlimitedValuesRoundTrip) {
    auto p = parse_policy(R"({"version": 1, "cgroup": {"memory_max": "max", "pids_max": "max",
        "cpu_max": "max 50000", "io_max": [{"device": "259:3", "wbps": "max"}]},
        "rlimits": {"nofile": "unlimited", "fsize": "unlimited"}})");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->cgroup.memory_max, kUnlimited);
    EXPECT_EQ(p->cgroup.pids_max, kUnlimited);
    EXPECT_EQ(p->cgroup.cpu_max->quota_us, kUnlimited);
    EXPECT_EQ(p->cgroup.io_max[0].wbps, kUnlimited);
    EXPECT_EQ(p->rlimits.at(Rlimit::nofile), kUnlimited);
    auto j = to_json(*p);
    EXPECT_EQ(j["cgroup"]["memory_max"], "max");
    EXPECT_EQ(j["cgroup"]["cpu_max"], "max 50000");
    EXPECT_EQ(j["rlimits"]["fsize"], "unlimited");
    auto back = parse_policy(j.dump());
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, *p);
}

struct BadCase {
    const char* what;
    const char* json;
    const char* path;     // the JSON path the message must name
    const char* excerpt;  // and a piece of its explanation
};

class policy_rejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(policy_rejects, NamingTheJsonPath) {
    const auto& c = GetParam();
    auto p = parse_policy(c.json);
    ASSERT_FALSE(p) << c.what << ": accepted " << c.json;
    const std::string& msg = p.error().message;
    if (*c.path != '\0') {
        EXPECT_NE(msg.find(fmt::format("policy: {}: ", c.path)), std::string::npos)
            << c.what << ": message does not name " << c.path << ": " << msg;
    }
    EXPECT_NE(msg.find(c.excerpt), std::string::npos) << c.what << ": " << msg;
}

// clang-format off
const BadCase kBadCases[] = {
    {"not JSON", R"({"version": 1,)", "", "not valid JSON"},
    // found by fuzz_specs: nlohmann throws out_of_range, not parse_error, for this one
    {"a number no double holds", R"({"version": 1, "user": {"gid": 6e5534}})", "", "not valid JSON"},
    {"not an object", R"([1])", "/", "expected an object, got an array"},
    {"version missing", R"({})", "/version", "missing"},
    {"version unsupported", R"({"version": 2})", "/version", "unsupported version 2"},
    {"version a string", R"({"version": "1"})", "/version", "unsupported version \"1\""},
    {"unknown top-level key", R"({"version": 1, "users": {}})", "/users", "unknown key"},
    {"unknown nested key", R"({"version": 1, "user": {"uid": 5, "name": "x"}})", "/user/name", "unknown key"},
    {"duplicate key", R"({"version": 1, "user": {"uid": 5, "uid": 6}})", "/user/uid", "duplicate key"},
    {"duplicate key in array element", R"({"version": 1, "jail": {"binds": [{"source": "/a", "target": "/b"}, {"source": "/a", "source": "/c", "target": "/d"}]}})", "/jail/binds/1/source", "duplicate key"},
    {"uid zero", R"({"version": 1, "user": {"uid": 0}})", "/user/uid", "expected an integer in 1..4294967294, got 0"},
    {"uid too large", R"({"version": 1, "user": {"uid": 4294967295}})", "/user/uid", "got 4294967295"},
    {"uid negative", R"({"version": 1, "user": {"uid": -5}})", "/user/uid", "got -5"},
    {"uid fractional", R"({"version": 1, "user": {"gid": 12.5}})", "/user/gid", "got 12.5"},
    {"uid a string", R"({"version": 1, "user": {"uid": "1000"}})", "/user/uid", "got \"1000\""},
    {"user not an object", R"({"version": 1, "user": 1000})", "/user", "expected an object, got 1000"},
    {"namespaces not an array", R"({"version": 1, "namespaces": "pid"})", "/namespaces", "expected an array"},
    {"unknown namespace", R"({"version": 1, "namespaces": ["mount", "pid", "time"]})", "/namespaces/2", "unknown namespace \"time\""},
    {"namespace twice", R"({"version": 1, "namespaces": ["mount", "pid", "pid"]})", "/namespaces/2", "listed twice"},
    {"namespace not a string", R"({"version": 1, "namespaces": ["mount", 3]})", "/namespaces/1", "expected a string, got 3"},
    {"no mount namespace", R"({"version": 1, "namespaces": ["pid"]})", "/namespaces", "must include \"mount\""},
    {"proc without pid namespace", R"({"version": 1, "namespaces": ["mount"], "jail": {"mount_proc": true}})", "/jail/mount_proc", "\"pid\" namespace"},
    {"relative root parent", R"({"version": 1, "jail": {"root_parent": "run/stockade"}})", "/jail/root_parent", "absolute path"},
    {"dotdot in root parent", R"({"version": 1, "jail": {"root_parent": "/run/../etc"}})", "/jail/root_parent", "absolute path"},
    {"root parent is /", R"({"version": 1, "jail": {"root_parent": "/"}})", "/jail/root_parent", "must not be \"/\""},
    {"mount_proc not a bool", R"({"version": 1, "jail": {"mount_proc": "yes"}})", "/jail/mount_proc", "expected true or false"},
    {"bind without target", R"({"version": 1, "jail": {"binds": [{"source": "/srv"}]}})", "/jail/binds/0/target", "missing"},
    {"bind relative target", R"({"version": 1, "jail": {"binds": [{"source": "/srv", "target": "srv"}]}})", "/jail/binds/0/target", "absolute path"},
    {"bind on /", R"({"version": 1, "jail": {"binds": [{"source": "/srv", "target": "/"}]}})", "/jail/binds/0/target", "must not be \"/\""},
    {"bind target twice", R"({"version": 1, "jail": {"binds": [{"source": "/a", "target": "/x"}, {"source": "/b", "target": "/x"}]}})", "/jail/binds/1/target", "already a bind target"},
    {"bind writable not bool", R"({"version": 1, "jail": {"binds": [{"source": "/a", "target": "/x", "writable": 1}]}})", "/jail/binds/0/writable", "expected true or false"},
    {"bind unknown key", R"({"version": 1, "jail": {"binds": [{"source": "/a", "target": "/x", "readonly": true}]}})", "/jail/binds/0/readonly", "unknown key"},
    {"memory_max a number", R"({"version": 1, "cgroup": {"memory_max": 12.5}})", "/cgroup/memory_max", "expected a string like \"512M\", got 12.5"},
    {"memory_max bad size", R"({"version": 1, "cgroup": {"memory_max": "512MB"}})", "/cgroup/memory_max", "expected a string like \"512M\""},
    {"memory_max negative", R"({"version": 1, "cgroup": {"memory_max": "-1G"}})", "/cgroup/memory_max", "got \"-1G\""},
    {"memory_max overflow", R"({"version": 1, "cgroup": {"memory_max": "99999999999T"}})", "/cgroup/memory_max", "expected a string like"},
    {"swap without memory max", R"({"version": 1, "cgroup": {"memory_swap_max": "1G"}})", "/cgroup/memory_swap_max", "memory_max is not set"},
    {"pids_max zero", R"({"version": 1, "cgroup": {"pids_max": 0}})", "/cgroup/pids_max", "expected an integer in 1..4194304 or \"max\", got 0"},
    {"pids_max string", R"({"version": 1, "cgroup": {"pids_max": "64"}})", "/cgroup/pids_max", "got \"64\""},
    {"cpu_max one field", R"({"version": 1, "cgroup": {"cpu_max": "200000"}})", "/cgroup/cpu_max", "QUOTA PERIOD"},
    {"cpu_max short period", R"({"version": 1, "cgroup": {"cpu_max": "200000 10"}})", "/cgroup/cpu_max", "QUOTA PERIOD"},
    {"cpu_max a number", R"({"version": 1, "cgroup": {"cpu_max": 2}})", "/cgroup/cpu_max", "got 2"},
    {"io_max bad device", R"({"version": 1, "cgroup": {"io_max": [{"device": "sda", "rbps": "1M"}]}})", "/cgroup/io_max/0/device", "MAJOR:MINOR"},
    {"io_max no limit", R"({"version": 1, "cgroup": {"io_max": [{"device": "8:0"}]}})", "/cgroup/io_max/0", "gives no limit"},
    {"io_max device twice", R"({"version": 1, "cgroup": {"io_max": [{"device": "8:0", "rbps": "1M"}, {"device": "8:0", "wbps": "1M"}]}})", "/cgroup/io_max/1", "listed twice"},
    {"io_max bad iops", R"({"version": 1, "cgroup": {"io_max": [{"device": "8:0", "riops": "fast"}]}})", "/cgroup/io_max/0/riops", "got \"fast\""},
    {"cgroup parent relative", R"({"version": 1, "cgroup": {"parent": "stockade"}})", "/cgroup/parent", "absolute path"},
    {"unknown rlimit", R"({"version": 1, "rlimits": {"stack": 1}})", "/rlimits/stack", "unknown key"},
    {"core not zero", R"({"version": 1, "rlimits": {"core": "1M"}})", "/rlimits/core", "must be 0"},
    {"nofile a size", R"({"version": 1, "rlimits": {"nofile": "1K"}})", "/rlimits/nofile", "an integer or \"unlimited\""},
    {"nofile too low", R"({"version": 1, "rlimits": {"nofile": 3}})", "/rlimits/nofile", "too few"},
    {"fsize bad", R"({"version": 1, "rlimits": {"fsize": -1}})", "/rlimits/fsize", "got -1"},
    {"selinux mode unknown", R"({"version": 1, "selinux": {"mode": "enforcing"}})", "/selinux/mode", "\"required\", \"if-enabled\" or \"off\""},
    {"selinux type bad", R"({"version": 1, "selinux": {"type": "stockade_t:s0"}})", "/selinux/type", "SELinux identifier"},
    {"selinux sensitivity bad", R"({"version": 1, "selinux": {"sensitivity": "s16"}})", "/selinux/sensitivity", "\"s0\"..\"s15\""},
    {"categories one", R"({"version": 1, "selinux": {"categories": [3]}})", "/selinux/categories", "two different category numbers"},
    {"categories equal", R"({"version": 1, "selinux": {"categories": [3, 3]}})", "/selinux/categories", "two different"},
    {"categories too big", R"({"version": 1, "selinux": {"categories": [3, 1024]}})", "/selinux/categories", "0..1023"},
    {"categories random", R"({"version": 1, "selinux": {"categories": "random"}})", "/selinux/categories", "\"auto\""},
    {"digest short", R"({"version": 1, "digests": {"kernel": "abc123"}})", "/digests/kernel", "64 hex digits, got \"abc123\""},
    {"digest not hex", R"({"version": 1, "digests": {"initrd": "zf86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}})", "/digests/initrd", "64 hex digits"},
    {"disk digest bad", R"({"version": 1, "digests": {"disks": {"root/fs": 5}}})", "/digests/disks/root~1fs", "64 hex digits, got 5"},
    {"digest unknown artefact", R"({"version": 1, "digests": {"bios": "x"}})", "/digests/bios", "unknown key"},
    {"seccomp mode unknown", R"({"version": 1, "seccomp": {"mode": "trap"}})", "/seccomp/mode", "\"kill\" or \"log\""},
    {"seccomp mode bool", R"({"version": 1, "seccomp": {"mode": false}})", "/seccomp/mode", "expected a string, got false"},
    {"api socket gid negative", R"({"version": 1, "api_socket_gid": -1})", "/api_socket_gid", ""},
    {"api socket gid name", R"({"version": 1, "api_socket_gid": "wheel"})", "/api_socket_gid", ""},
    {"vfio devices not a list", R"({"version": 1, "vfio_devices": "0000:01:00.0"})", "/vfio_devices", "a list of PCI addresses"},
    {"vfio device not a string", R"({"version": 1, "vfio_devices": [1]})", "/vfio_devices/0", "expected a string"},
    {"vfio device not an address", R"({"version": 1, "vfio_devices": ["0000:01:00.0", "eth0"]})", "/vfio_devices/1", "'eth0'"},
    {"vfio device function 8", R"({"version": 1, "vfio_devices": ["01:00.8"]})", "/vfio_devices/0", "function"},
    {"vfio device twice", R"({"version": 1, "vfio_devices": ["01:00.0", "0000:01:00.0"]})", "/vfio_devices", "0000:01:00.0 is listed twice"},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Table, policy_rejects, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& param_info) {
                             std::string name = param_info.param.what;
                             for (char& c : name)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

TEST(policy_file, ErrorsNameTheFile) {
    auto p = load_policy_file("/nonexistent/policy.json");
    ASSERT_FALSE(p);
    EXPECT_NE(p.error().message.find("/nonexistent/policy.json"), std::string::npos);
    EXPECT_NE(p.error().message.find("No such file"), std::string::npos) << p.error().message;
}

TEST(policy_sizes, ParseAndFormat) {
    EXPECT_EQ(parse_size("0"), 0u);
    EXPECT_EQ(parse_size("4096"), 4096u);
    EXPECT_EQ(parse_size("64K"), 65536u);
    EXPECT_EQ(parse_size("512M"), 512ull << 20);
    EXPECT_EQ(parse_size("3G"), 3ull << 30);
    EXPECT_EQ(parse_size("2T"), 2ull << 40);
    for (const char* bad : {"", "M", "1.5G", "1 G", "1g", "1KB", "-1", "+1", "18446744073709551616",
                            "16777216T", "18446744073709551615"})
        EXPECT_FALSE(parse_size(bad)) << bad;
    EXPECT_EQ(format_size(0), "0");
    EXPECT_EQ(format_size(1000), "1000");
    EXPECT_EQ(format_size(1024), "1K");
    EXPECT_EQ(format_size(3ull << 30), "3G");
    EXPECT_EQ(format_size((1ull << 30) + (1ull << 20)), "1025M");
}

TEST(policy_memory, GuestMustFitUnderMemoryMax) {
    auto p = parse_policy(R"({"version": 1, "cgroup": {"memory_max": "256M"}})");
    ASSERT_TRUE(p);
    EXPECT_TRUE(check_guest_memory_fits(*p, 128ull << 20, 64ull << 20));
    auto r = check_guest_memory_fits(*p, 256ull << 20, 64ull << 20);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("/cgroup/memory_max is 256M but the guest needs 256M"),
              std::string::npos)
        << r.error().message;
    EXPECT_TRUE(check_guest_memory_fits(default_policy(), 1ull << 40, 1ull << 30))
        << "no memory_max: nothing to exceed";
}

TEST(policy_sandbox_id, OnlySafeNames) {
    EXPECT_TRUE(check_sandbox_id("sb-1"));
    EXPECT_TRUE(check_sandbox_id("A.b_c-9"));
    for (const char* bad : {"", ".", "..", "-x", "a/b", "a b", "x\n", "é"})
        EXPECT_FALSE(check_sandbox_id(bad)) << bad;
    EXPECT_FALSE(check_sandbox_id(std::string(65, 'a')));
}

}  // namespace
}  // namespace stockade::policy
