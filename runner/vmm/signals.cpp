#include "runner/vmm/signals.hpp"

#include <signal.h>
#include <sys/signalfd.h>

namespace stockade {

Result<UniqueFd> watch_termination_signals(bool window_changes) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
        sigaddset(&set, s);
    if (window_changes) sigaddset(&set, SIGWINCH);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return fail_sys("sigprocmask");
    int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) return fail_sys("signalfd");
    ::signal(SIGPIPE, SIG_IGN);
    return UniqueFd(fd);
}

}  // namespace stockade
