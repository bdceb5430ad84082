// Long-lived sandboxes in the lab: `stockade exec` runs more commands in a running guest
// through stockade-init's control stream, byte-exact and with their statuses; kill reaches
// the workload; pause holds the guest; nothing is left when the sandbox is gone.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "lab/support/process.hpp"

namespace stockade {
namespace {

using lab::run_process;
using lab::run_stockade;
using namespace std::chrono_literals;

std::string stockade_binary() {
    return lab::build_dir() + "/runner/stockade";
}

lab::RunResult stockade(std::vector<std::string> args, const lab::RunOptions& o = {}) {
    args.insert(args.begin(), stockade_binary());
    return run_process(args, o);
}

lab::RunResult exec(const std::string& id, std::vector<std::string> cmd,
                    const lab::RunOptions& o = {}) {
    cmd.insert(cmd.begin(), {"exec", id, "--"});
    return stockade(cmd, o);
}

std::string random_bytes(std::size_t n) {
    std::mt19937 gen(11);
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(gen());
    return s;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

// A sandbox whose workload prints "go" and then lives until it is told otherwise; `body` runs
// once it printed "go". Returns how the run ended.
lab::RunResult with_sandbox(const std::string& id, const std::string& workload,
                            const std::function<void()>& body,
                            std::vector<std::string> options = {}) {
    lab::RunOptions o;
    o.mark = "go";
    o.timeout = 300s;
    o.on_mark = [&](pid_t) { body(); };
    std::vector<std::string> args{"--id", id};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), {"--", "sh", "-c", workload});
    return run_stockade(args, o);
}

TEST(Exec, RunsCommandsBesideTheWorkloadByteExactWithTheirStatuses) {
    const std::string id = "lab-exec-1";
    const std::string blob = random_bytes(1 << 20);
    lab::RunResult status7, binary, not_found, not_exec, env, parallel_a, parallel_b;
    std::vector<double> round_trips;
    auto r = with_sandbox(id, "echo go; exec sleep 600", [&] {
        status7 = exec(id, {"sh", "-c", "printf 'out\\n'; printf 'err\\n' >&2; exit 7"});
        lab::RunOptions in;
        in.stdin_data = blob;
        binary = stockade({"exec", "-i", id, "--", "cat"}, in);
        not_found = exec(id, {"no-such-command"});
        not_exec = exec(id, {"/proc"});
        env = stockade({"exec", "-e", "GREETING=hello there", "-w", "/tmp", id, "--", "sh", "-c",
                        "echo \"$GREETING\"; pwd"});
        std::thread other([&] { parallel_a = exec(id, {"sh", "-c", "sleep 1; echo a"}); });
        parallel_b = exec(id, {"sh", "-c", "sleep 1; echo b"});
        other.join();
        for (int i = 0; i < 20; ++i) {
            auto t = exec(id, {"true"});
            EXPECT_EQ(t.status, 0) << t.describe();
            round_trips.push_back(t.seconds);
        }
        EXPECT_EQ(stockade({"kill", id, "TERM"}).status, 0);
    });
    EXPECT_EQ(r.status, 143) << "the workload ended by SIGTERM\n" << r.describe();
    EXPECT_EQ(status7.status, 7) << status7.describe();
    EXPECT_EQ(status7.out, "out\n");
    EXPECT_EQ(status7.err, "err\n");
    EXPECT_EQ(binary.status, 0) << binary.err;
    EXPECT_TRUE(binary.out == blob)
        << "1 MiB through exec -i cat came back different (" << binary.out.size() << " bytes)";
    EXPECT_EQ(not_found.status, 127) << not_found.describe();
    EXPECT_EQ(not_exec.status, 126) << not_exec.describe();
    EXPECT_EQ(env.status, 0) << env.describe();
    EXPECT_EQ(env.out, "hello there\n/tmp\n");
    EXPECT_EQ(parallel_a.out, "a\n") << parallel_a.describe();
    EXPECT_EQ(parallel_b.out, "b\n") << parallel_b.describe();
    EXPECT_LT(std::max(parallel_a.seconds, parallel_b.seconds), 10);
    EXPECT_EQ(r.out, "go\n") << "an exec's output is not the workload's";
    ASSERT_EQ(round_trips.size(), 20u);
    std::sort(round_trips.begin(), round_trips.end());
    std::cout << "[exec] stockade exec ID -- true, 20 round trips: median " << round_trips[10] * 1e3
              << " ms, min " << round_trips.front() * 1e3 << " ms, max " << round_trips.back() * 1e3
              << " ms\n";

    // The sandbox is gone: exec says so, and nothing of it is left.
    auto after = exec(id, {"true"});
    EXPECT_EQ(after.status, 125);
    EXPECT_NE(after.err.find("not running"), std::string::npos) << after.err;
    EXPECT_FALSE(exists("/run/stockade/" + id));
}

TEST(Exec, AClientThatGoesAwayMidExecTakesItsCommandWithIt) {
    const std::string id = "lab-exec-2";
    std::string left;
    int listed = -1;
    auto r = with_sandbox(id, "echo go; exec sleep 600", [&] {
        // The exec's command marks itself, then sleeps; its client is killed meanwhile.
        lab::RunOptions o;
        o.mark = "started";
        o.kill_at_mark = true;
        auto killed = exec(id, {"sh", "-c", "echo started; exec sleep 4242"}, o);
        EXPECT_NE(killed.status, 0);
        // The guest kills the command once the relay closes the exec's streams.
        for (int i = 0; i < 50; ++i) {
            auto ps = exec(id, {"sh", "-c", "ps -o args | grep -c '^sleep 424[2]' || true"});
            listed = ps.status;
            left = ps.out;
            if (left == "0\n") break;
            std::this_thread::sleep_for(200ms);
        }
        EXPECT_EQ(stockade({"kill", id, "KILL"}).status, 0);
    });
    EXPECT_EQ(r.status, 137) << r.describe();
    EXPECT_EQ(listed, 0);
    EXPECT_EQ(left, "0\n") << "the command of a client that went away still runs";
}

TEST(Exec, PauseHoldsTheGuestAndExecWaitsForResume) {
    const std::string id = "lab-exec-3";
    auto counter = [&] {
        auto c = exec(id, {"cat", "/tmp/count"});
        EXPECT_EQ(c.status, 0) << c.describe();
        return std::atoi(c.out.c_str());
    };
    int before = 0, after_pause = 0, after_run = 0;
    lab::RunResult paused_exec, pause, resume;
    auto r = with_sandbox(id,
                          "i=0; echo go; while :; do i=$((i+1)); echo $i > /tmp/count.new; "
                          "mv /tmp/count.new /tmp/count; sleep 0.05; done",
                          [&] {
                              std::this_thread::sleep_for(1s);
                              before = counter();
                              pause = stockade({"pause", id});
                              paused_exec = exec(id, {"true"});
                              std::this_thread::sleep_for(3s);
                              resume = stockade({"resume", id});
                              after_pause = counter();
                              std::this_thread::sleep_for(3s);
                              after_run = counter();
                              EXPECT_EQ(stockade({"kill", id}).status, 0);
                          });
    EXPECT_EQ(r.status, 143) << r.describe();
    EXPECT_EQ(pause.status, 0) << pause.describe();
    EXPECT_EQ(resume.status, 0) << resume.describe();
    EXPECT_EQ(paused_exec.status, 125);
    EXPECT_NE(paused_exec.err.find("paused"), std::string::npos) << paused_exec.err;
    std::cout << "[exec] guest counter: " << before << " before a 3 s pause, " << after_pause
              << " after it, " << after_run << " 3 s later\n";
    // Over the 3 s paused the counter moved only by what the execs around it took; over
    // the 3 s running it moved much more.
    EXPECT_GT(after_run - after_pause, 2 * (after_pause - before));
}

}  // namespace
}  // namespace stockade
