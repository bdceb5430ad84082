// The control API in the lab: a running sandbox answers on /run/stockade/ID/api.sock, driven
// with curl --unix-socket. Pausing stops the guest (its own clock does not see the pause) and
// resuming lets it finish; faults come as {"fault_message": ...}; the state directory is
// gone when the sandbox is.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "lab/support/process.hpp"

namespace stockade {
namespace {

using lab::run_process;
using lab::run_stockade;
using nlohmann::json;

constexpr const char* kId = "lab-api-1";
const std::string kSocket = std::string("/run/stockade/") + kId + "/api.sock";

struct Reply {
    int code = 0;
    std::string body;
};

// curl --unix-socket: the status code and the body.
Reply curl(const std::string& method, const std::string& path, const std::string& body = "") {
    std::vector<std::string> argv{"/usr/bin/curl", "-s", "--max-time", "30", "--unix-socket",
                                  kSocket,         "-X", method,       "-w", "\n%{http_code}"};
    if (!body.empty())
        argv.insert(argv.end(), {"-H", "Content-Type: application/json", "-d", body});
    argv.push_back("http://localhost" + path);
    auto r = run_process(argv);
    Reply out;
    const auto nl = r.out.rfind('\n');
    if (r.status != 0 || nl == std::string::npos) {
        ADD_FAILURE() << "curl " << method << " " << path << ": " << r.describe();
        return out;
    }
    out.code = std::stoi(r.out.substr(nl + 1));
    out.body = r.out.substr(0, nl);
    return out;
}

double field(const std::string& out, const std::string& name) {
    std::smatch m;
    if (!std::regex_search(out, m, std::regex(name + "=([0-9.]+)"))) return -1;
    return std::stod(m[1]);
}

TEST(Api, CurlDrivesARunningSandboxAndPauseHoldsTheGuest) {
    constexpr double kPauseSeconds = 3;
    Reply info, config, metrics, bad, unknown, paused_info, pause, resume;
    double paused_for = 0;
    lab::RunOptions o;
    o.mark = "go";
    o.timeout = std::chrono::seconds(240);
    o.on_mark = [&](pid_t) {
        info = curl("GET", "/");
        const auto t0 = std::chrono::steady_clock::now();
        pause = curl("PATCH", "/vm", R"({"state": "Paused"})");
        // A paused sandbox still answers.
        paused_info = curl("GET", "/");
        config = curl("GET", "/machine-config");
        metrics = curl("GET", "/metrics");
        bad = curl("PATCH", "/vm", "{not json");
        unknown = curl("GET", "/snapshot/create");
        std::this_thread::sleep_until(t0 + std::chrono::duration<double>(kPauseSeconds));
        resume = curl("PATCH", "/vm", R"({"state": "Resumed"})");
        paused_for = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    // The guest measures its own time around 4 s of sleeps, with the pause inside them.
    auto r = run_stockade({"--id", kId, "--memory", "256", "--", "sh", "-c",
                           "read s _ < /proc/uptime; echo start=$s; echo go; i=0; "
                           "while [ $i -lt 40 ]; do sleep 0.1; i=$((i+1)); done; "
                           "read e _ < /proc/uptime; echo end=$e"},
                          o);
    ASSERT_EQ(r.status, 0) << r.describe();
    ASSERT_EQ(info.code, 200) << info.body;
    const json i = json::parse(info.body);
    EXPECT_EQ(i["id"], kId);
    EXPECT_EQ(i["state"], "Running");
    EXPECT_EQ(i["app_name"], "stockade");
    ASSERT_EQ(config.code, 200) << config.body;
    EXPECT_EQ(json::parse(config.body)["mem_size_mib"], 256);
    EXPECT_EQ(json::parse(config.body)["vcpu_count"], 1);
    ASSERT_EQ(metrics.code, 200) << metrics.body;
    EXPECT_GT(json::parse(metrics.body)["vcpu"]["exit_io"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(bad.code, 400);
    EXPECT_NE(json::parse(bad.body)["fault_message"].get<std::string>().find("JSON object"),
              std::string::npos)
        << bad.body;
    EXPECT_EQ(unknown.code, 400);
    EXPECT_EQ(pause.code, 204) << pause.body;
    EXPECT_EQ(json::parse(paused_info.body)["state"], "Paused");
    EXPECT_EQ(resume.code, 204) << resume.body;

    // The host saw the pause; the guest's clock did not.
    const double guest = field(r.out, "end") - field(r.out, "start");
    const double host = r.seconds - r.mark_seconds;
    std::cout << "[api] paused " << paused_for << " s; guest measured " << guest << " s, the host "
              << host << " s from its mark to its end\n";
    ASSERT_GT(guest, 0) << r.out;
    EXPECT_GE(paused_for, kPauseSeconds);
    EXPECT_GT(host - guest, kPauseSeconds - 1) << "the guest ran (or its clock ran) while paused";

    struct stat st {};
    EXPECT_NE(::stat((std::string("/run/stockade/") + kId).c_str(), &st), 0)
        << "the state directory outlived the sandbox";
}

// One GET / on a fresh connection, as a client library does it: connect, request, the whole
// response. Returns the seconds it took, or -1.
double timed_get() {
    const auto t0 = std::chrono::steady_clock::now();
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, kSocket.c_str(), sizeof a.sun_path - 1);
    std::string got;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const std::string req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        (void)!::write(fd, req.data(), req.size());
        char buf[1024];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
            got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (got.find("\"state\":\"Running\"") == std::string::npos) return -1;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The issue's latency figure: GET / on a running sandbox, median of 100.
TEST(Api, RequestLatency) {
    std::vector<double> ms;
    lab::RunOptions o;
    o.mark = "up";
    o.on_mark = [&](pid_t) {
        for (int i = 0; i < 100; ++i)
            if (const double s = timed_get(); s >= 0) ms.push_back(s * 1000);
    };
    auto r = run_stockade({"--id", kId, "--", "sh", "-c", "echo up; sleep 5"}, o);
    EXPECT_EQ(r.status, 0) << r.describe();
    ASSERT_EQ(ms.size(), 100u) << "every request answered";
    std::sort(ms.begin(), ms.end());
    std::cout << "[api] GET / over the Unix socket, 100 requests: median " << ms[50] << " ms, min "
              << ms.front() << " ms, max " << ms.back() << " ms\n";
    EXPECT_LT(ms[50], 50) << "a request is a few system calls and a JSON object";
}

// A paused sandbox still stops on SIGTERM, promptly, and cleans up: the pause holds the vCPUs,
// not the event loop.
TEST(Api, SigtermStopsAPausedSandbox) {
    Reply pause;
    lab::RunOptions o;
    o.mark = "up";
    o.signal = SIGTERM;
    o.signal_after = "up";
    o.on_mark = [&](pid_t) { pause = curl("PATCH", "/vm", R"({"state": "Paused"})"); };
    auto r = run_stockade({"--id", kId, "--", "sh", "-c", "echo up; sleep 600"}, o);
    EXPECT_EQ(pause.code, 204) << pause.body;
    EXPECT_EQ(r.status, 128 + SIGTERM) << r.describe();
    EXPECT_LT(r.seconds - r.mark_seconds, 10) << r.describe();
    struct stat st {};
    EXPECT_NE(::stat((std::string("/run/stockade/") + kId).c_str(), &st), 0);
}

// A configuration file in Firecracker's format (its documented fields) boots and runs: the
// guest has the machine, the read-only drive and the entropy device it names.
TEST(Api, AFirecrackerConfigFileBootsAndRuns) {
    const std::string disk = "/tmp/stockade-fc-data.img", config = "/tmp/stockade-fc-vm.json",
                      log = "/tmp/stockade-fc-vm.log";
    ASSERT_EQ(run_process({"/usr/bin/truncate", "-s", "2M", disk}).status, 0);
    std::ofstream(config) << json{
        {"boot-source",
         {{"kernel_image_path", STOCKADE_TEST_VMLINUX},
          {"initrd_path", STOCKADE_TEST_INITRD},
          {"boot_args", "quiet"}}},
        {"machine-config",
         {{"vcpu_count", 2}, {"mem_size_mib", 320}, {"smt", false}, {"track_dirty_pages", false}}},
        {"drives",
         {{{"drive_id", "data"},
           {"path_on_host", disk},
           {"is_root_device", false},
           {"is_read_only", true},
           {"cache_type", "Unsafe"},
           {"io_engine", "Sync"},
           {"rate_limiter", nullptr}}}},
        {"network-interfaces", json::array()},
        {"entropy", json::object()},
        {"logger", {{"log_path", log}, {"level", "Debug"}, {"show_level", true}}}};
    ::unlink(log.c_str());
    auto r = run_stockade({"--config-file", config, "--stats", "--", "sh", "-c",
                           "nproc; grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2; "
                           "cat /sys/block/vda/size /sys/block/vda/ro; head -c 4 /dev/hwrng | "
                           "wc -c; echo workload-err >&2"});
    ::unlink(disk.c_str());
    ::unlink(config.c_str());
    ASSERT_EQ(r.status, 0) << r.describe();
    // stockade's own lines (--stats) went to the logger's file; the workload's stderr stayed
    // stderr.
    const std::string logged = lab::read_text(log);
    ::unlink(log.c_str());
    EXPECT_NE(logged.find("stockade: stats: "), std::string::npos) << logged;
    EXPECT_EQ(r.err, "workload-err\n");
    std::istringstream out(r.out);
    long cpus = 0, mem_kib = 0, sectors = 0, ro = 0, rng = 0;
    out >> cpus >> mem_kib >> sectors >> ro >> rng;
    EXPECT_EQ(cpus, 2) << r.out;
    EXPECT_GT(mem_kib, 250 * 1024) << r.out;
    EXPECT_LE(mem_kib, 320 * 1024) << r.out;
    EXPECT_EQ(sectors, 4096) << r.out;
    EXPECT_EQ(ro, 1) << r.out;
    EXPECT_EQ(rng, 4) << r.out;
}

// --metrics-path: a JSON line on each FlushMetrics, and the run's totals when it ends.
TEST(Api, FlushMetricsAppendsJsonLines) {
    const std::string file = "/tmp/stockade-api-metrics.json";
    ::unlink(file.c_str());
    Reply flushed;
    lab::RunOptions o;
    o.mark = "up";
    o.on_mark = [&](pid_t) {
        flushed = curl("PUT", "/actions", R"({"action_type": "FlushMetrics"})");
    };
    auto r = run_stockade(
        {"--id", kId, "--metrics-path", file, "--", "sh", "-c", "echo up; sleep 3"}, o);
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(flushed.code, 204) << flushed.body;
    std::ifstream in(file);
    std::vector<json> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(json::parse(line, nullptr, false));
    ::unlink(file.c_str());
    ASSERT_EQ(lines.size(), 2u) << "one flushed, one at the end";
    for (const json& j : lines) {
        ASSERT_FALSE(j.is_discarded());
        EXPECT_TRUE(j.contains("vcpu")) << j.dump();
    }
    EXPECT_GE(lines[1]["uptime_ms"].get<std::int64_t>(), lines[0]["uptime_ms"].get<std::int64_t>());
}

TEST(Api, TwoSandboxesCannotShareAnId) {
    lab::RunOptions o;
    o.mark = "up";
    lab::RunResult second;
    o.on_mark = [&](pid_t) { second = run_stockade({"--id", kId, "--", "true"}); };
    auto first = run_stockade({"--id", kId, "--", "sh", "-c", "echo up; sleep 2"}, o);
    EXPECT_EQ(first.status, 0) << first.describe();
    EXPECT_EQ(second.status, 125) << second.describe();
    EXPECT_NE(second.err.find("another sandbox has this id"), std::string::npos) << second.err;
}

}  // namespace
}  // namespace stockade
