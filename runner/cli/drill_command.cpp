#include "runner/cli/drill_command.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "runner/cli/control_commands.hpp"
#include "runner/cli/exit_status.hpp"
#include "runner/cli/manage.hpp"
#include "runner/cli/snapshot_commands.hpp"
#include "runner/registry/net.hpp"
#include "runner/supervisor/seal_helper.hpp"
#include "runner/supervisor/snapshot_files.hpp"
#include "runner/supervisor/state_file.hpp"
#include "runner/supervisor/supervisor.hpp"

namespace stockade::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::size_t kTail = 4096;  // bytes of CHECK's stdout and stderr in the report
// A CHECK still running this long after the drill's time is up is ended with its sandbox.
constexpr auto kHangGrace = 10s;

struct DrillOptions {
    std::string dir;
    std::string network = "isolated";
    unsigned timeout = 120;
    bool no_verify_memory = false;
    std::string seal_key;
    std::vector<std::string> check;
};

long long ms_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// A fresh id that says what it is.
std::string drill_id() {
    std::uint8_t r[6] = {};
    if (::getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
        return fmt::format("drill-{}", ::getpid());
    std::string id = "drill-";
    for (std::uint8_t b : r)
        id += fmt::format("{:02x}", b);
    return id;
}

}  // namespace

Result<> isolate_network(SandboxSpec& spec, std::string_view network) {
    auto& net = spec.device<NetKind>();
    if (!net) return {};
    if (network == "none")
        return fail(
            "the snapshot's sandbox has a network device, which its guest expects to find: "
            "--network isolated gives it a tap on no bridge");
    std::string kept;
    std::string_view rest = net->netsetup;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        const std::string_view key = item.substr(0, item.find('='));
        if (key != "mac" && key != "mtu" && key != "queues") continue;
        if (!kept.empty()) kept += ',';
        kept += item;
    }
    net->netsetup = kept;
    net->existing_tap = false;
    net->netns.clear();  // a container's network namespace is not isolated
    return {};
}

namespace {

// An anonymous file for one attempt's output: CHECK never waits on a reader.
UniqueFd output_file(const char* name) {
    return UniqueFd(::memfd_create(name, MFD_CLOEXEC));
}

std::string tail_of(int fd) {
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) return {};
    const auto size = static_cast<std::size_t>(st.st_size);
    const std::size_t from = size > kTail ? size - kTail : 0;
    std::string s(size - from, '\0');
    const ssize_t n = ::pread(fd, s.data(), s.size(), static_cast<off_t>(from));
    s.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return s;
}

bool removed(const std::string& id) {
    std::error_code ec;
    return !std::filesystem::exists(state_dir(id), ec);
}

// JSON strings must be UTF-8; CHECK's bytes need not be.
std::string printable(const std::string& bytes) {
    std::string out;
    for (unsigned char c : bytes)
        out += c < 0x80 ? static_cast<char>(c) : '?';
    return out;
}

int drill(const DrillOptions& o) {
    const auto start = Clock::now();
    const std::string dir = std::filesystem::absolute(o.dir).lexically_normal().string();
    const std::string id = drill_id();
    json report{{"snapshot", dir},
                {"sandbox", id},
                {"network", o.network},
                // before the start (a sealed snapshot's memory chunks are authenticated as they
                // are loaded either way)
                {"memory_verified", !o.no_verify_memory},
                {"sealed", false}};
    auto finish = [&](int status) {
        report["removed"] = removed(id);
        report["total_ms"] = ms_since(start);
        std::printf("%s\n", report.dump().c_str());
        return status;
    };
    auto key = seal_key_path(o.seal_key);
    if (!key) {
        report["error"] = key.error().message;
        log::error("{}", key.error().message);
        return finish(kFailed);
    }
    auto spec = snapshot_restore_spec(dir, id, !o.no_verify_memory, *key);
    if (spec) report["snapshot_id"] = spec->restore_snapshot_id;
    if (spec) {
        if (auto isolated = isolate_network(*spec, o.network); !isolated)
            spec = std::unexpected(std::move(isolated).error());
    }
    if (!spec) {
        log::error("{}", spec.error().message);
        report["error"] = spec.error().message;
        return finish(kFailed);
    }
    // Every digest (the memory's too, unless told otherwise) is read before the restore.
    report["digests_verified"] = true;
    spec->detach = true;  // its output goes to its log, not into the report
    if (const int restored = run_detached(std::move(*spec), false); restored != 0) {
        report["error"] = "the restore failed (stderr says why)";
        return finish(kFailed);
    }
    // The sandbox's supervisor is this process's child: when `rm` ends it, nothing is left
    // waiting to be reaped.
    ::signal(SIGCHLD, SIG_IGN);
    report["restore_ms"] = ms_since(start);
    report["sealed"] = !key->empty();  // and every chunk authenticated, or it had not started

    // A CHECK that hangs past the time is ended with its sandbox.
    const auto deadline = Clock::now() + std::chrono::seconds(o.timeout);
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::atomic<bool> hung{false};
    std::thread watchdog([&] {
        std::unique_lock lock(mu);
        if (cv.wait_until(lock, deadline + kHangGrace, [&] { return done; })) return;
        hung = true;
        lock.unlock();
        (void)remove_sandbox(id, true);
    });

    const auto checking = Clock::now();
    int attempts = 0;
    std::optional<int> status;
    std::string last_error;
    UniqueFd out, err;
    for (;;) {
        out = output_file("drill-stdout");
        err = output_file("drill-stderr");
        ++attempts;
        auto r = exec_in(id, o.check, out.get(), err.get(), deadline);
        if (r) {
            status = *r;
            last_error.clear();
        } else {
            last_error = r.error().message;  // not reachable yet (init reconnecting), or gone
        }
        if ((status && *status == 0) || hung || Clock::now() >= deadline) break;
        std::this_thread::sleep_for(r ? 1s : 200ms);
    }
    const bool passed = status && *status == 0 && !hung;
    {
        std::lock_guard lock(mu);
        done = true;
    }
    cv.notify_all();
    watchdog.join();

    json check{{"argv", o.check},
               {"attempts", attempts},
               {"passed", passed},
               {"stdout_tail", printable(tail_of(out.get()))},
               {"stderr_tail", printable(tail_of(err.get()))}};
    check["status"] = status ? json(*status) : json(nullptr);
    check["time_to_pass_ms"] = passed ? json(ms_since(checking)) : json(nullptr);
    if (hung)
        check["error"] =
            fmt::format("still running {} s after the time was up", kHangGrace.count());
    else if (!last_error.empty())
        check["error"] = last_error;
    report["check"] = std::move(check);

    if (!removed(id) && remove_sandbox(id, true) != 0)
        log::error("drill {}: could not remove its sandbox", id);
    if (!removed(id)) return finish(kFailed);
    if (!status || hung) return finish(kFailed);
    return finish(*status);
}

}  // namespace

int drill_cli(std::span<const std::string> args) {
    CLI::App app{
        "Rehearse a recovery: restore the snapshot in DIR into a fresh, isolated sandbox, run "
        "CHECK in it (again each second until it passes or --timeout), remove everything, and "
        "print a JSON report: restore time, time to a passing check, what was verified, "
        "CHECK's status and the tail of its output. Exits with CHECK's status (125: the drill "
        "itself failed).",
        "stockade drill"};
    DrillOptions o;
    app.add_option("DIR", o.dir, "the snapshot's directory")->required();
    app.add_option("--network", o.network,
                   "isolated (default): the guest's network device, if it has one, gets a tap "
                   "on no bridge, with its MAC; none: refuse a snapshot that has one")
        ->check(CLI::IsMember({"isolated", "none"}));
    app.add_option("--timeout", o.timeout,
                   "seconds CHECK has to pass, counted once the sandbox is restored (default "
                   "120); a CHECK still running 10 s after that is ended with the sandbox")
        ->check(CLI::Range(1u, 86400u));
    app.add_flag("--no-verify-memory", o.no_verify_memory,
                 "do not read the memory part before the restore (its SHA-256, or a sealed "
                 "part's every chunk, which is then authenticated as it is loaded)");
    app.add_option("--seal-key", o.seal_key,
                   "a sealed snapshot's key file: every part is authenticated before the "
                   "restore, the memory too unless --no-verify-memory (the report's \"sealed\" "
                   "is true once they have been)")
        ->check(CLI::ExistingFile);
    app.add_option("CHECK", o.check, "the command that says the restored workload is healthy")
        ->required();
    if (auto done = parse_command(app, args, kFailed)) return *done;
    ::signal(SIGPIPE, SIG_IGN);
    return drill(o);
}

}  // namespace stockade::cli
