// The UART's bounded path to the host's stdout and stderr (runner/stdio/host_output.hpp):
// a reader that never reads costs bytes, never a blocked caller or a stop that hangs; a
// reader that reads gets every byte in order.
#include "runner/stdio/host_output.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>

#include "base/unique_fd.hpp"
#include "policy/policy.hpp"
#include "runner/vmm/seccomp_profiles.hpp"
#include "tests/support/child.hpp"

namespace stockade {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Pipe {
    UniqueFd read_end, write_end;
    Pipe() {
        int p[2];
        EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
        read_end = UniqueFd(p[0]);
        write_end = UniqueFd(p[1]);
    }
    [[nodiscard]] std::size_t capacity() const {
        return static_cast<std::size_t>(::fcntl(write_end.get(), F_GETPIPE_SZ));
    }
};

std::unique_ptr<HostOutput> start_output(int fd, std::size_t capacity = kHostOutputBuffer) {
    HostOutputConfig c;
    c.fd = fd;
    c.capacity = capacity;
    auto r = HostOutput::start(std::move(c));
    EXPECT_TRUE(r) << r.error().message;
    return r ? std::move(*r) : nullptr;
}

// A piece of a stream whose every byte says where it is, so a lost, repeated or reordered
// byte shows.
std::string pattern(std::size_t from, std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((from + i) % 251);
    return s;
}

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

TEST(HostOutput, AReaderThatNeverReadsCostsBytesNotTime) {
    ::signal(SIGPIPE, SIG_IGN);  // the end: the read end goes, the writer gets EPIPE
    Pipe p;
    auto out = start_output(p.write_end.get(), 64u << 10);
    ASSERT_TRUE(out);
    const std::string piece = pattern(0, 1000);
    const std::size_t total = 4000 * piece.size();
    const auto t = Clock::now();
    for (int i = 0; i < 4000; ++i)
        out->append(piece);
    EXPECT_LT(ms_since(t), 2000.0) << "append never waits for the reader";
    const auto c = out->counters();
    EXPECT_LE(c.written, p.capacity()) << "nobody read: only what the pipe holds";
    EXPECT_GE(c.dropped, total - (64u << 10) - p.capacity());
    out->stop();
    const auto after = out->counters();
    EXPECT_EQ(after.written + after.dropped, total);
}

TEST(HostOutput, AStopWithAStalledReaderEndsWithinItsBound) {
    ::signal(SIGPIPE, SIG_IGN);
    Pipe p;
    auto out = start_output(p.write_end.get());
    ASSERT_TRUE(out);
    const std::size_t total = 2 * kHostOutputBuffer;
    out->append(pattern(0, total));
    const auto t = Clock::now();
    out->stop();
    const double took = ms_since(t);
    EXPECT_GE(took, 0.9 * static_cast<double>(kHostOutputStall.count()))
        << "the writer was given its chance";
    EXPECT_LT(took, static_cast<double>(kHostOutputFlushMax.count()))
        << "no progress for kHostOutputStall ends the wait";
    const auto c = out->counters();
    EXPECT_LE(c.written, p.capacity());
    EXPECT_EQ(c.written + c.dropped, total) << "what was not written is counted";
    out->append(std::string_view("late"));
    EXPECT_EQ(out->counters().dropped, c.dropped + 4) << "after the stop: dropped";
    // The writer left behind in write(2) ends with EPIPE when the read end goes.
}

TEST(HostOutput, AReaderThatReadsGetsEveryByteInOrder) {
    Pipe p;
    std::string got;
    std::thread reader([&] { got = test::read_all(p.read_end.get()); });
    auto out = start_output(p.write_end.get());
    ASSERT_TRUE(out);
    // Rounds under the buffer's size, of pieces that do not divide it (so the ring wraps
    // mid-piece); between rounds the buffer empties, so nothing can overflow.
    std::size_t sent = 0;
    for (int round = 0; round < 6; ++round) {
        for (std::size_t n = 0; n < 700; ++n, sent += 997)
            out->append(pattern(sent, 997));
        if (round == 5) break;  // the last round: the stop's flush delivers it
        const auto t = Clock::now();
        while (out->counters().written < sent && ms_since(t) < 10000)
            std::this_thread::sleep_for(1ms);
    }
    out->stop();
    p.write_end.reset();
    reader.join();
    const auto c = out->counters();
    EXPECT_EQ(c.dropped, 0u);
    EXPECT_EQ(c.written, sent);
    ASSERT_EQ(got.size(), sent);
    EXPECT_TRUE(got == pattern(0, sent)) << "every byte, in order";
}

TEST(HostOutput, ABrokenStreamDropsAndCounts) {
    ::signal(SIGPIPE, SIG_IGN);
    Pipe p;
    p.read_end.reset();
    auto out = start_output(p.write_end.get());
    ASSERT_TRUE(out);
    out->append(pattern(0, 10000));
    out->stop();
    EXPECT_EQ(out->counters().written, 0u);
    EXPECT_EQ(out->counters().dropped, 10000u);
}

TEST(HostOutput, AFailureOnTheWriterThreadFailsStart) {
    HostOutputConfig c;
    c.fd = STDOUT_FILENO;
    c.on_thread_start = [] { return Result<>(fail("no filter")); };
    auto r = HostOutput::start(std::move(c));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "no filter");
}

// The writer under its own filter (in a child: a call the filter lacks kills the process):
// writing, waiting for bytes, the stop, the thread's exit.
TEST(HostOutput, TheWriterRunsUnderItsFilter) {
    Pipe p;
    const std::string text = pattern(0, 100000);
    std::string got;
    std::thread reader([&] { got = test::read_all(p.read_end.get()); });
    const int status = test::run_in_child([&] {
        HostOutputConfig c;
        c.fd = p.write_end.get();
        c.on_thread_start = [] {
            return host_output_seccomp_profile(policy::SeccompMode::kill).load();
        };
        auto out = HostOutput::start(std::move(c));
        if (!out) return 2;
        for (std::size_t i = 0; i < text.size(); i += 1000)
            (*out)->append(std::string_view(text).substr(i, 1000));
        (*out)->stop();
        return (*out)->counters().written == text.size() ? 0 : 3;
    });
    p.write_end.reset();
    reader.join();
    EXPECT_TRUE(test::exited_ok(status)) << test::describe_status(status);
    EXPECT_TRUE(got == text);
}

TEST(HostOutput, ItsFilterOnlyWritesAndWaits) {
    const auto names = host_output_seccomp_profile(policy::SeccompMode::kill).allowed_syscalls();
    for (const char* call : {"write", "futex", "poll"})
        EXPECT_EQ(std::count(names.begin(), names.end(), call), 1) << call;
    for (const char* call : {"ioctl", "accept4", "socket", "openat", "clone", "clone3", "tgkill",
                             "epoll_wait", "sendto", "execve"})
        EXPECT_EQ(std::count(names.begin(), names.end(), call), 0) << call;
}

}  // namespace
}  // namespace stockade
