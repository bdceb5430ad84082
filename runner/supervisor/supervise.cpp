// The supervisor's wait for its sandbox process (runner/supervisor/supervise.hpp).
#include "runner/supervisor/supervise.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "base/log.hpp"
#include "base/unique_fd.hpp"

namespace stockade {
namespace {

// Reads what the sandbox process reported, at most one small buffer (a wake is a change or
// two, never a stream). Returns read()'s result: 0 once the sandbox process closed its end.
ssize_t read_status(int fd, const StatusHandler& on_status) {
    char buf[16];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    for (ssize_t i = 0; i < n; ++i)
        if (auto s = sandbox_status_of(buf[i])) on_status(*s);
    return n;
}

}  // namespace

// Waits for the sandbox process; SIGINT/SIGTERM/SIGHUP/SIGQUIT to the supervisor are passed
// on to it (it stops its VM cleanly and exits 128+signal) and, if it has not ended
// `grace` later, it is killed. Its status bytes go to on_status.
Result<Supervised> supervise(pid_t child, int sigfd, int status_fd, const StatusHandler& on_status,
                             std::chrono::milliseconds grace) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
    UniqueFd owned(pidfd);
    using Clock = std::chrono::steady_clock;
    constexpr auto kNone = Clock::time_point::max();
    auto deadline = kNone;  // when the sandbox process is killed if still there
    Supervised out;
    int forwarded = 0;
    for (;;) {
        int timeout = pidfd >= 0 ? -1 : 100;
        if (deadline != kNone) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            timeout =
                std::clamp<int>(static_cast<int>(left.count()), 0, timeout < 0 ? INT_MAX : timeout);
        }
        // poll() skips negative descriptors: a status pipe at its end, or none.
        pollfd fds[3] = {{sigfd, POLLIN, 0}, {status_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
        const int n = ::poll(fds, pidfd >= 0 ? 3 : 2, timeout);
        if (n < 0 && errno != EINTR) return fail_sys("poll in the supervisor");
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si{};
            while (::read(sigfd, &si, sizeof si) == sizeof si) {
                forwarded = static_cast<int>(si.ssi_signo);
                ::kill(child, forwarded);
                if (deadline == kNone && out.escalated_signal == 0) deadline = Clock::now() + grace;
            }
        }
        if (Clock::now() >= deadline && out.escalated_signal == 0) {
            log::error("the sandbox process did not stop within {} ms of SIG{}; killing it",
                       grace.count(), ::sigabbrev_np(forwarded));
            ::kill(child, SIGKILL);
            out.escalated_signal = forwarded;
            deadline = kNone;  // from here the pidfd says when it is gone: no busy wait
        }
        if (fds[1].revents & (POLLIN | POLLHUP) && read_status(status_fd, on_status) == 0)
            status_fd = -1;
        const pid_t r = ::waitpid(child, &out.wait_status, WNOHANG);
        if (r == child) {
            // What it reported just before it ended still counts.
            while (status_fd >= 0 && read_status(status_fd, on_status) > 0) {
            }
            return out;
        }
        if (r < 0 && errno != EINTR) return fail_sys("waitpid for the sandbox process");
    }
}

int exit_status(const Supervised& ended) {
    const int wait_status = ended.wait_status;
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    const int sig = WTERMSIG(wait_status);
    // Killed because it did not stop when asked: the run ends as a stop by that signal does.
    if (sig == SIGKILL && ended.escalated_signal != 0) return 128 + ended.escalated_signal;
    if (sig == SIGSYS)
        log::error(
            "the sandbox process was killed by SIGSYS: it made a system call outside its "
            "seccomp allowlist (a policy with \"seccomp\": {{\"mode\": \"log\"}} logs "
            "the call instead)");
    else
        log::error("the sandbox process was killed by signal {} ({})", sig, ::strsignal(sig));
    return 125;
}

}  // namespace stockade
