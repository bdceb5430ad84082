// The supervisor's wait for its sandbox process: a termination signal is passed on, and a
// sandbox process that does not stop within the grace period is killed, the run ending as a
// stop by that signal; status bytes reach the handler, even those written just before the end.
#include "runner/supervisor/supervise.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "base/unique_fd.hpp"

namespace stockade {
namespace {

using namespace std::chrono_literals;

// SIGUSR1 blocked in this thread and read from a signalfd, as the supervisor reads its
// termination signals; restored afterwards.
class SignalFd {
  public:
    SignalFd() {
        sigemptyset(&set_);
        sigaddset(&set_, SIGUSR1);
        ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
        fd_ = UniqueFd(::signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC));
    }
    ~SignalFd() {
        fd_.reset();
        // Nothing pending may survive the test.
        timespec zero{};
        while (::sigtimedwait(&set_, nullptr, &zero) > 0) {
        }
        ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    [[nodiscard]] int get() const { return fd_.get(); }

  private:
    sigset_t set_{}, old_{};
    UniqueFd fd_;
};

// A child that ignores SIGUSR1 (a sandbox process that does not stop when asked) or ends
// with 128+SIGUSR1 on it (one that does); it first writes `status` to the pipe.
pid_t child(bool obeys, int status_fd, char status) {
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    ::signal(SIGUSR1, obeys ? SIG_DFL : SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (status_fd >= 0) (void)!::write(status_fd, &status, 1);
    for (;;)
        ::pause();
}

TEST(Supervise, SandboxThatIgnoresTheSignalIsKilledAfterTheGrace) {
    SignalFd sig;
    ASSERT_GE(sig.get(), 0);
    const pid_t pid = child(false, -1, 0);
    ASSERT_GT(pid, 0);
    ::usleep(50'000);  // the child ignores SIGUSR1 by now
    ::kill(::getpid(), SIGUSR1);
    const auto start = std::chrono::steady_clock::now();
    auto r = supervise(
        pid, sig.get(), -1, [](SandboxStatus) {}, 300ms);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(WIFSIGNALED(r->wait_status));
    EXPECT_EQ(WTERMSIG(r->wait_status), SIGKILL);
    EXPECT_EQ(r->escalated_signal, SIGUSR1);
    EXPECT_EQ(exit_status(*r), 128 + SIGUSR1);
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 2s);
}

TEST(Supervise, SandboxThatStopsIsNotKilledAndReportsItsStatus) {
    SignalFd sig;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    UniqueFd read_end(p[0]), write_end(p[1]);
    const pid_t pid = child(true, write_end.get(), static_cast<char>(SandboxStatus::ready));
    ASSERT_GT(pid, 0);
    write_end.reset();
    ::usleep(50'000);
    ::kill(::getpid(), SIGUSR1);
    std::vector<SandboxStatus> seen;
    auto r = supervise(
        pid, sig.get(), read_end.get(), [&](SandboxStatus s) { seen.push_back(s); }, 5s);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->escalated_signal, 0);
    ASSERT_TRUE(WIFSIGNALED(r->wait_status));
    EXPECT_EQ(WTERMSIG(r->wait_status), SIGUSR1);
    EXPECT_EQ(seen, std::vector{SandboxStatus::ready});
}

TEST(Supervise, ExitStatusIsTheSandboxsOwn) {
    Supervised ended;
    ended.wait_status = 42 << 8;  // exited with 42
    EXPECT_EQ(exit_status(ended), 42);
    ended.wait_status = SIGKILL;  // killed, not by the supervisor's escalation
    EXPECT_EQ(exit_status(ended), 125);
}

}  // namespace
}  // namespace stockade
