#include "lab/support/process.hpp"

#include <chrono>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace stockade::lab {

std::string RunResult::describe() const {
    std::ostringstream s;
    s << "status " << status << " after " << seconds << " s\n--- stdout ---\n"
      << out << "\n--- stderr ---\n"
      << err;
    return s.str();
}

std::string build_dir() {
    const char* env = std::getenv("STOCKADE_BUILD_DIR");
    return env != nullptr ? env : STOCKADE_BUILD_DIR;
}

std::string read_text(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

std::string guest_kernel_release() {
    const char* env = std::getenv("STOCKADE_TEST_KERNEL_RELEASE_FILE");
    std::string v = read_text(env != nullptr ? env : build_dir() + "/guest/kernel.version");
    while (!v.empty() && (v.back() == '\n' || v.back() == ' '))
        v.pop_back();
    return v;
}

RunResult run_process(const std::vector<std::string>& argv, const RunOptions& o) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
        return {};
    const auto start = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        if (o.close_stdin)
            ::dup2(in[0], 0);
        else
            ::dup2(::open("/dev/null", O_RDONLY), 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    // Feed stdin without blocking the capture (the workload may read little of it).
    ::fcntl(in[1], F_SETFL, O_NONBLOCK);
    std::size_t fed = 0;
    if (o.stdin_data.empty()) {
        ::close(in[1]);
        in[1] = -1;
    }
    RunResult r;
    bool signalled = false;
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        auto elapsed = std::chrono::steady_clock::now() - start;
        if (elapsed > o.timeout) {
            ::kill(pid, SIGKILL);
            break;
        }
        fds[2].fd = in[1];
        if (::poll(fds, 3, 200) < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[65536];
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            }
        }
        if (in[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR))) {
            ssize_t n = ::write(in[1], o.stdin_data.data() + fed, o.stdin_data.size() - fed);
            if (n > 0) fed += static_cast<std::size_t>(n);
            if (n < 0 && errno != EAGAIN) fed = o.stdin_data.size();
            if (fed == o.stdin_data.size()) {
                ::close(in[1]);
                in[1] = -1;
            }
        }
        if (!o.mark.empty() && r.mark_seconds < 0 && r.out.find(o.mark) != std::string::npos) {
            r.mark_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (o.on_mark) o.on_mark(pid);
            if (o.kill_at_mark) ::kill(pid, SIGKILL);
        }
        if (o.signal && !signalled && r.out.find(o.signal_after) != std::string::npos) {
            ::kill(pid, *o.signal);
            signalled = true;
        }
    }
    if (in[1] >= 0) ::close(in[1]);
    for (int i = 0; i < 2; ++i)
        if (fds[i].fd >= 0) ::close(fds[i].fd);
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (std::chrono::steady_clock::now() - start > o.timeout)
        r.status = -1;
    else if (WIFEXITED(st))
        r.status = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        r.status = 128 + WTERMSIG(st);
    return r;
}

RunResult run_stockade(const std::vector<std::string>& args, const RunOptions& options) {
    std::vector<std::string> argv{build_dir() + "/runner/stockade", "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, options);
}

bool eventually(const std::function<bool()>& done, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return true;
}

}  // namespace stockade::lab
