// Detached sandboxes in the lab: `run -d` returns with the id while the workload runs; ps,
// logs and inspect show it from its state directory; rm refuses a running sandbox and, with
// --force, stops it and leaves nothing behind; a sandbox whose workload ended stays listed,
// with its exit status, until rm; after its supervisor is killed with SIGKILL the sandbox is
// stopped and rm removes what the supervisor could not (cgroup leaf, jail root, directory).
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/support/process.hpp"

namespace stockade {
namespace {

using lab::eventually;
using lab::RunResult;
using nlohmann::json;
using namespace std::chrono_literals;

// `stockade ARGS...` (any command) with this build's binary.
RunResult stockade(const std::vector<std::string>& args) {
    std::vector<std::string> argv{lab::build_dir() + "/runner/stockade"};
    argv.insert(argv.end(), args.begin(), args.end());
    lab::RunOptions o;
    o.timeout = 120s;
    return lab::run_process(argv, o);
}

bool exists(const std::string& path) {
    return !path.empty() && std::filesystem::exists(path);
}

std::string dir_of(const std::string& id) {
    return "/run/stockade/" + id;
}

// The sandbox's object in `stockade ps -a --json`; null when it is not listed.
json listed(const std::string& id) {
    auto r = stockade({"ps", "-a", "--json"});
    EXPECT_EQ(r.status, 0) << r.describe();
    for (const auto& s : json::parse(r.out))
        if (s["id"] == id) return s;
    return nullptr;
}

// Starts a detached sandbox and checks that it returned with its id.
void start_detached(const std::string& id, const std::vector<std::string>& workload) {
    std::vector<std::string> args{"run", "-d", "--id", id, "--"};
    args.insert(args.end(), workload.begin(), workload.end());
    auto r = stockade(args);
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, id + "\n");
}

// A process that is gone, or a zombie nobody reaped yet: it runs no more.
bool process_gone(pid_t pid) {
    const std::string stat = lab::read_text("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    return close == std::string::npos || stat.substr(close + 2, 1) == "Z";
}

TEST(Lifecycle, DetachedSandboxIsListedLoggedInspectedAndRemovedByForce) {
    const std::string id = "lab-life-run";
    const std::vector<std::string> workload{"sh", "-c", "echo out; echo err >&2; sleep 300"};
    const auto t0 = std::chrono::steady_clock::now();
    start_detached(id, workload);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 120s) << "run -d waited for the workload";

    // Its output, byte-exact, apart.
    RunResult logs;
    EXPECT_TRUE(eventually([&] {
        logs = stockade({"logs", id});
        return logs.out == "out\n" && logs.err == "err\n";
    })) << logs.describe();

    auto table = stockade({"ps"});
    ASSERT_EQ(table.status, 0) << table.describe();
    EXPECT_NE(table.out.find("COMMAND"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find(id), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("running"), std::string::npos) << table.out;

    const json s = listed(id);
    ASSERT_TRUE(s.is_object()) << "ps --json does not list " << id;
    EXPECT_EQ(s["state"], "running");
    EXPECT_EQ(s["argv"], json(workload));
    EXPECT_EQ(s["detached"], true);
    EXPECT_EQ(s["vcpus"], 1);
    EXPECT_EQ(s["memory_mib"], 256);
    EXPECT_TRUE(s["exit_status"].is_null());
    EXPECT_GT(s["pid"].get<int>(), 0);
    EXPECT_GT(s["sandbox_pid"].get<int>(), 0);
    const std::string leaf = s["host"]["cgroup_leaf"].get<std::string>();
    const std::string jail = s["host"]["jail_root"].get<std::string>();
    EXPECT_TRUE(exists(leaf)) << leaf;
    EXPECT_TRUE(exists(jail)) << jail;

    auto inspect = stockade({"inspect", id});
    ASSERT_EQ(inspect.status, 0) << inspect.describe();
    const json i = json::parse(inspect.out);
    EXPECT_EQ(i["id"], id);
    EXPECT_EQ(i["state"], "running");
    EXPECT_EQ(i["api"]["vm_config"]["machine-config"]["vcpu_count"], 1) << inspect.out;
    EXPECT_TRUE(i["api"]["metrics"].contains("vcpu")) << inspect.out;

    // A live id is nobody else's.
    auto second = stockade({"run", "-d", "--id", id, "--", "true"});
    EXPECT_EQ(second.status, 125) << second.describe();
    EXPECT_NE(second.err.find("another sandbox has this id"), std::string::npos) << second.err;
    EXPECT_EQ(listed(id)["state"], "running") << "the refused start touched the first sandbox";

    auto refused = stockade({"rm", id});
    EXPECT_EQ(refused.status, 1) << refused.describe();
    EXPECT_NE(refused.err.find("running: stop it first or use --force"), std::string::npos)
        << refused.err;
    EXPECT_TRUE(exists(dir_of(id)));

    auto forced = stockade({"rm", "--force", id});
    EXPECT_EQ(forced.status, 0) << forced.describe();
    EXPECT_FALSE(exists(dir_of(id)));
    EXPECT_FALSE(exists(leaf)) << leaf;
    EXPECT_FALSE(exists(jail)) << jail;
    EXPECT_TRUE(listed(id).is_null());

    auto unknown = stockade({"rm", id});
    EXPECT_EQ(unknown.status, 1) << unknown.describe();
    EXPECT_NE(unknown.err.find(id), std::string::npos) << unknown.err;
}

TEST(Lifecycle, AnEndedWorkloadStaysListedWithItsStatusUntilRm) {
    const std::string id = "lab-life-exit";
    start_detached(id, {"sh", "-c", "exit 7"});
    json s;
    EXPECT_TRUE(eventually([&] {
        s = listed(id);
        return s.is_object() && s["state"] == "stopped";
    })) << s.dump();
    EXPECT_EQ(s["exit_status"], 7);
    EXPECT_TRUE(s["finished"].is_string());
    // Not among the running ones, and its host state went with its supervisor.
    EXPECT_EQ(stockade({"ps"}).out.find(id), std::string::npos);
    EXPECT_TRUE(s["host"]["cgroup_leaf"].is_null()) << s.dump();
    EXPECT_TRUE(s["host"]["jail_root"].is_null()) << s.dump();

    auto inspect = stockade({"inspect", id});
    ASSERT_EQ(inspect.status, 0) << inspect.describe();
    const json i = json::parse(inspect.out);
    EXPECT_EQ(i["exit_status"], 7);
    EXPECT_FALSE(i.contains("api"));

    // Its id stays taken until rm.
    auto again = stockade({"run", "-d", "--id", id, "--", "true"});
    EXPECT_EQ(again.status, 125) << again.describe();
    EXPECT_NE(again.err.find("stockade rm " + id), std::string::npos) << again.err;

    auto rm = stockade({"rm", id});
    EXPECT_EQ(rm.status, 0) << rm.describe();
    EXPECT_FALSE(exists(dir_of(id)));
}

TEST(Lifecycle, RmRemovesWhatASupervisorKilledWithSigkillLeft) {
    // With a network: its tap is not persistent, so it goes with the last process holding it.
    const std::string id = "lk9";
    const std::string tap = "stk-lk9";  // the fresh tap's name comes from the id
    auto started =
        stockade({"run", "-d", "--id", id, "--net", "addr=169.254.99.2/24", "--", "sleep", "300"});
    ASSERT_EQ(started.status, 0) << started.describe();
    const json s = listed(id);
    ASSERT_TRUE(s.is_object());
    ASSERT_EQ(s["state"], "running");
    const pid_t supervisor = s["pid"].get<pid_t>();
    const pid_t sandbox = s["sandbox_pid"].get<pid_t>();
    const std::string leaf = s["host"]["cgroup_leaf"].get<std::string>();
    const std::string jail = s["host"]["jail_root"].get<std::string>();

    EXPECT_TRUE(exists("/sys/class/net/" + tap));
    ASSERT_EQ(::kill(supervisor, SIGKILL), 0);
    // The sandbox process dies with its supervisor (PR_SET_PDEATHSIG).
    EXPECT_TRUE(eventually([&] { return process_gone(sandbox); }, 30s));
    json after;
    EXPECT_TRUE(eventually([&] {
        after = listed(id);
        return after.is_object() && after["state"] == "stopped";
    }));
    EXPECT_TRUE(after["exit_status"].is_null()) << after.dump();
    EXPECT_TRUE(exists(leaf)) << "nothing was left to clean up: the test proves nothing";
    EXPECT_TRUE(exists(jail));

    auto rm = stockade({"rm", id});
    EXPECT_EQ(rm.status, 0) << rm.describe();
    EXPECT_FALSE(exists(leaf)) << leaf;
    EXPECT_FALSE(exists(jail)) << jail;
    EXPECT_FALSE(exists("/sys/class/net/" + tap)) << "the tap outlived its sandbox";
    EXPECT_FALSE(exists("/run/stockade/net/" + id + ".json")) << "its network record outlived it";
    EXPECT_FALSE(exists(dir_of(id)));
}

TEST(Lifecycle, CreateBootsAndWaitsStartRunsTheWorkload) {
    const std::string id = "lab-life-create";
    auto created = stockade({"create", "--id", id, "--", "sh", "-c", "echo workload; sleep 300"});
    ASSERT_EQ(created.status, 0) << created.describe();
    EXPECT_EQ(created.out, id + "\n");
    json s = listed(id);
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(s["state"], "created");
    // Booted and reachable, but the workload has not run.
    auto early = stockade({"exec", id, "--", "echo", "exec before start"});
    EXPECT_EQ(early.status, 0) << early.describe();
    EXPECT_EQ(early.out, "exec before start\n");
    auto killed = stockade({"kill", id});
    EXPECT_EQ(killed.status, 1) << "nothing to signal before start: " << killed.describe();
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(stockade({"logs", id}).out, "") << "the workload ran before start";

    auto started = stockade({"start", id});
    ASSERT_EQ(started.status, 0) << started.describe();
    RunResult logs;
    EXPECT_TRUE(eventually([&] {
        logs = stockade({"logs", id});
        return logs.out == "workload\n";
    })) << logs.describe();
    EXPECT_EQ(listed(id)["state"], "running");
    auto twice = stockade({"start", id});
    EXPECT_EQ(twice.status, 1) << twice.describe();
    EXPECT_NE(twice.err.find("already started"), std::string::npos) << twice.err;

    EXPECT_EQ(stockade({"rm", "--force", id}).status, 0);
    EXPECT_FALSE(exists(dir_of(id)));
}

TEST(Lifecycle, StopAsksTheGuestThenStopsTheVmAfterItsTime) {
    // A workload that ends on SIGTERM: the guest powers off with its status.
    const std::string polite = "lab-life-stop";
    start_detached(polite, {"sleep", "300"});
    auto t0 = std::chrono::steady_clock::now();
    auto stop = stockade({"stop", polite});
    const double polite_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(stop.status, 0) << stop.describe();
    json s = listed(polite);
    EXPECT_EQ(s["state"], "stopped") << s.dump();
    EXPECT_EQ(s["exit_status"], 143) << s.dump();
    EXPECT_LT(polite_s, 10) << "the guest's own power-off took the whole --time";

    // One that ignores SIGTERM: after --time the VM is stopped without it.
    const std::string stubborn = "lab-life-stop-2";
    start_detached(stubborn, {"sh", "-c", "trap '' TERM; while :; do sleep 1; done"});
    t0 = std::chrono::steady_clock::now();
    stop = stockade({"stop", "--time", "2", stubborn});
    const double stubborn_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(stop.status, 0) << stop.describe();
    EXPECT_NE(stop.err.find("still running after 2 s"), std::string::npos) << stop.err;
    EXPECT_GE(stubborn_s, 2);
    EXPECT_LT(stubborn_s, 20);
    s = listed(stubborn);
    EXPECT_EQ(s["state"], "stopped") << s.dump();
    std::cout << "[lifecycle] stop: " << polite_s << " s for a workload that ends on SIGTERM, "
              << stubborn_s << " s with --time 2 for one that ignores it\n";
    // Stopping a stopped sandbox is no error (as docker stop).
    EXPECT_EQ(stockade({"stop", polite}).status, 0);
    for (const std::string& id : {polite, stubborn}) {
        EXPECT_EQ(stockade({"rm", id}).status, 0);
        EXPECT_FALSE(exists(dir_of(id)));
    }
}

TEST(Lifecycle, ASandboxProcessKilledWithSigkillIsCleanedUpByItsSupervisor) {
    const std::string id = "lab-life-kill-vmm";
    start_detached(id, {"sleep", "300"});
    const json s = listed(id);
    ASSERT_TRUE(s.is_object());
    const std::string leaf = s["host"]["cgroup_leaf"].get<std::string>();
    ASSERT_EQ(::kill(s["sandbox_pid"].get<pid_t>(), SIGKILL), 0);
    json after;
    EXPECT_TRUE(eventually([&] {
        after = listed(id);
        return after.is_object() && after["state"] == "stopped";
    }));
    EXPECT_EQ(after["exit_status"], 125) << after.dump();
    EXPECT_FALSE(exists(leaf)) << "the supervisor left the cgroup leaf";
    auto logs = stockade({"logs", id});
    EXPECT_EQ(logs.status, 0);
    EXPECT_EQ(stockade({"rm", id}).status, 0);
    EXPECT_FALSE(exists(dir_of(id)));
}

TEST(Lifecycle, APolicyGroupMayDriveTheApiAndNobodyElseMay) {
    const std::string id = "lab-life-group";
    const std::string policy = "/tmp/lab-life-group-policy.json";
    { std::ofstream(policy) << R"({"version": 1, "api_socket_gid": 4242})"; }
    auto started = stockade({"run", "-d", "--policy", policy, "--id", id, "--", "sleep", "300"});
    ASSERT_EQ(started.status, 0) << started.describe();
    auto as = [&](const char* gid) {
        return lab::run_process({"/usr/bin/setpriv", "--reuid=65534", std::string("--regid=") + gid,
                                 "--clear-groups", "/usr/bin/curl", "-s", "-o", "/dev/null", "-w",
                                 "%{http_code}", "--unix-socket", dir_of(id) + "/api.sock",
                                 "http://localhost/"});
    };
    auto member = as("4242");
    EXPECT_EQ(member.out, "200") << member.describe();
    auto stranger = as("4243");
    EXPECT_NE(stranger.out, "200") << stranger.describe();
    auto state = lab::run_process({"/usr/bin/setpriv", "--reuid=65534", "--regid=4242",
                                   "--clear-groups", "/bin/cat", dir_of(id) + "/state.json"});
    EXPECT_NE(state.status, 0) << "a group member read the state file";
    EXPECT_EQ(stockade({"rm", "-f", id}).status, 0);
    std::remove(policy.c_str());
}

}  // namespace
}  // namespace stockade
