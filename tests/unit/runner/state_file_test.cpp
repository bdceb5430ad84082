// The sandbox's state file: what the supervisor writes is what ps, inspect and rm read back;
// a write replaces the file whole; a supervisor that is gone (or a reused pid) reads as a
// stopped sandbox; old or partial files are read with defaults, non-JSON is refused.
#include "runner/supervisor/state_file.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "base/io.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade {
namespace {

StateRecord sample() {
    StateRecord r;
    r.id = "sb-1";
    r.state = SandboxState::running;
    r.pid = 4242;
    r.pid_start_time = 987654;
    r.sandbox_pid = 4243;
    r.created = "2026-12-05T21:49:49Z";
    r.started = "2026-12-05T21:49:50Z";
    r.vcpus = 2;
    r.memory_mib = 512;
    r.argv = {"sh", "-c", "echo 'a b'; exit 7"};
    r.detached = true;
    r.guest_cid = 0xfffffffe;
    r.stdout_log = "/run/stockade/sb-1/stdout.log";
    r.stderr_log = "/run/stockade/sb-1/stderr.log";
    r.host = {"/sys/fs/cgroup/stockade/sb-1",
              "/run/stockade/jail/sb-1",
              {"stk-sb-1"},
              "/run/stockade/mcs/c3,c9"};
    return r;
}

TEST(StateFile, RoundTripsThroughJsonAndTheFile) {
    StateRecord r = sample();
    auto back = state_from_json(state_to_json(r), "test");
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, r);

    r.state = SandboxState::stopped;
    r.exit_status = 7;
    r.finished = "2026-12-05T21:50:00Z";
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    ASSERT_TRUE(write_state_file(dir.path.string(), r));
    auto read = read_state_file(dir.path.string());
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, r);
}

TEST(StateFile, UnsetFieldsAreNullInTheJson) {
    StateRecord r = sample();
    r.sandbox_pid = 0;
    r.started.clear();
    const std::string text = state_to_json(r);
    EXPECT_NE(text.find("\"exit_status\": null"), std::string::npos) << text;
    EXPECT_NE(text.find("\"finished\": null"), std::string::npos) << text;
    EXPECT_NE(text.find("\"started\": null"), std::string::npos) << text;
    EXPECT_NE(text.find("\"sandbox_pid\": null"), std::string::npos) << text;
    EXPECT_NE(text.find("\"state\": \"running\""), std::string::npos) << text;
}

TEST(StateFile, AWriteReplacesTheFileWholeAndLeavesNoTemporaryFile) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    StateRecord r = sample();
    ASSERT_TRUE(write_state_file(dir.path.string(), r));
    r.state = SandboxState::paused;
    ASSERT_TRUE(write_state_file(dir.path.string(), r));
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir.path))
        names.push_back(e.path().filename().string());
    EXPECT_EQ(names, std::vector<std::string>{"state.json"});
    EXPECT_EQ(std::filesystem::status(dir.path / "state.json").permissions(),
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    EXPECT_EQ(read_state_file(dir.path.string())->state, SandboxState::paused);
}

TEST(StateFile, AGoneOrReplacedSupervisorMeansStopped) {
    const StateRecord r = sample();
    // The same process: as written.
    EXPECT_EQ(with_liveness(r, r.pid_start_time), r);
    // No such process, or the pid now names a process started at another time.
    for (auto now : {std::optional<std::uint64_t>(), std::optional<std::uint64_t>(1)}) {
        const StateRecord seen = with_liveness(r, now);
        EXPECT_EQ(seen.state, SandboxState::stopped);
        EXPECT_FALSE(seen.exit_status);
        EXPECT_EQ(seen.host, r.host);
    }
    // A stopped sandbox keeps its exit status after its supervisor is gone.
    StateRecord stopped = r;
    stopped.state = SandboxState::stopped;
    stopped.exit_status = 7;
    EXPECT_EQ(with_liveness(stopped, std::nullopt), stopped);
}

TEST(StateFile, LivenessAgainstProc) {
    test::TempDir dir;
    StateRecord self = sample();
    self.pid = ::getpid();
    self.pid_start_time = process_start_time(self.pid).value_or(0);
    ASSERT_NE(self.pid_start_time, 0u);
    ASSERT_TRUE(write_state_file(dir.path.string(), self));
    EXPECT_EQ(read_live_state(dir.path.string())->state, SandboxState::running);
    StateRecord reused = self;
    reused.pid_start_time += 1;
    ASSERT_TRUE(write_state_file(dir.path.string(), reused));
    EXPECT_EQ(read_live_state(dir.path.string())->state, SandboxState::stopped);
    EXPECT_FALSE(read_live_state(dir.path.string() + "/none"));  // no file
}

// The supervisor writes "stopped" with the exit status and exits between the reader's read of
// "running" and its look at /proc: the reader reports the status, not an unknown one.
TEST(StateFile, ASupervisorThatFinishesWhileItsFileIsReadIsSeenWithItsStatus) {
    test::TempDir dir;
    const std::string d = dir.path.string();
    const StateRecord running = sample();
    ASSERT_TRUE(write_state_file(d, running));
    StateRecord finished = running;
    finished.state = SandboxState::stopped;
    finished.exit_status = 125;
    finished.finished = "2026-12-05T21:50:00Z";
    int looked = 0;
    auto seen = read_live_state(d, [&](pid_t pid) -> std::optional<std::uint64_t> {
        EXPECT_EQ(pid, running.pid);
        ++looked;
        EXPECT_TRUE(write_state_file(d, finished));  // ... and then it is gone
        return std::nullopt;
    });
    ASSERT_TRUE(seen) << seen.error().message;
    EXPECT_EQ(looked, 1);
    EXPECT_EQ(*seen, finished);

    // One that died without a word (SIGKILL) stays stopped with its status unknown.
    ASSERT_TRUE(write_state_file(d, running));
    seen = read_live_state(d, [](pid_t) { return std::optional<std::uint64_t>(); });
    ASSERT_TRUE(seen);
    EXPECT_EQ(seen->state, SandboxState::stopped);
    EXPECT_FALSE(seen->exit_status);
    // One that is alive is not asked twice and reads as written.
    seen = read_live_state(d, [&](pid_t) { return running.pid_start_time; });
    ASSERT_TRUE(seen);
    EXPECT_EQ(*seen, running);
}

TEST(StateFile, AZombieIsGone) {
    // A supervisor that exited but whose parent (an engine's shim) has not reaped it yet
    // has finished: it must not hold `delete` or `rm` waiting.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) ::_exit(0);
    bool zombie = false;
    for (int i = 0; i < 200 && !zombie; ++i) {
        std::string stat =
            read_text_file("/proc/" + std::to_string(child) + "/stat", 4096).value_or("");
        zombie = stat.find(") Z ") != std::string::npos;
        if (!zombie) ::usleep(10'000);
    }
    ASSERT_TRUE(zombie);
    EXPECT_FALSE(process_start_time(child));
    EXPECT_TRUE(process_start_time(::getpid()));
    ::waitpid(child, nullptr, 0);
}

TEST(StateFile, StartTimeIsField22CountedFromTheLastParenthesis) {
    // A command name with spaces and parentheses in it.
    const std::string stat =
        "123 (a b) c)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 55501 1000 10";
    EXPECT_EQ(stat_start_time(stat), 55501u);
    EXPECT_EQ(stat_start_time("123 (x) S 1 2 3"), std::nullopt);
    EXPECT_EQ(stat_start_time("no parenthesis"), std::nullopt);
}

TEST(StateFile, ReadingToleratesMissingFieldsAndRefusesWhatIsNotJson) {
    auto partial = state_from_json(R"({"id": "sb-2", "state": "created", "pid": 7})", "test");
    ASSERT_TRUE(partial) << partial.error().message;
    EXPECT_EQ(partial->id, "sb-2");
    EXPECT_EQ(partial->state, SandboxState::created);
    EXPECT_EQ(partial->pid, 7);
    EXPECT_TRUE(partial->argv.empty());
    EXPECT_FALSE(partial->exit_status);
    EXPECT_EQ(partial->host, HostRecord{});

    for (const char* bad : {"", "{not json", "[1, 2]", "\"text\""}) {
        auto r = state_from_json(bad, "/run/stockade/x/state.json");
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().message, "/run/stockade/x/state.json: not a JSON object");
    }
    auto wrong = state_from_json(R"({"pid": "seven"})", "f");
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("\"pid\""), std::string::npos) << wrong.error().message;

    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    ASSERT_TRUE(write_file((dir.path / "state.json").string(), "garbage", O_CREAT));
    auto read = read_state_file(dir.path.string());
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().message.find("not a JSON object"), std::string::npos);
}

TEST(StateFile, TimesAreRfc3339Utc) {
    using namespace std::chrono;
    EXPECT_EQ(rfc3339_utc(system_clock::time_point(seconds(1796334589))), "2026-12-03T21:49:49Z");
}

}  // namespace
}  // namespace stockade
