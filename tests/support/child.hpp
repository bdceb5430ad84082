#pragma once
// Child processes for tests: a function run in a forked child, a program run with one of its
// outputs captured, and reading their wait status. A child never returns into GoogleTest: it
// _exits, so assertions stay in the parent.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>
#include <vector>

namespace stockade::test {

// waitpid that survives EINTR; -1 when it fails.
inline int wait_status(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return status;
}

// Runs `body` in a forked child, which exits with its result; returns the wait status.
inline int run_in_child(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) ::_exit(body());
    return wait_status(pid);
}

// Waits for `pid` and returns what its parent, itself a test's child, should exit with to
// pass the verdict on: pid's exit status, or 100 + the signal that killed it.
inline int exit_code_of(pid_t pid) {
    const int status = wait_status(pid);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 100 + WTERMSIG(status) : 99;
}

// Everything readable from `fd` until end of file.
inline std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    return out;
}

struct ProgramRun {
    int status;          // the wait status; -1 when the program could not be started
    std::string output;  // what it wrote to the captured descriptor
};

// Runs the program argv[0] with `argv`, its descriptor `captured` (1: stdout, 2: stderr)
// into a pipe, and waits for it. A program that cannot be executed exits with 99.
inline ProgramRun run_program(const std::vector<std::string>& argv, int captured) {
    if (argv.empty()) return {-1, ""};
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int p[2];
    if (::pipe(p) != 0) return {-1, ""};
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(p[0]);
        ::close(p[1]);
        return {-1, ""};
    }
    if (pid == 0) {
        ::dup2(p[1], captured);
        ::close(p[0]);
        ::execv(args[0], args.data());
        ::_exit(99);
    }
    ::close(p[1]);
    std::string output = read_all(p[0]);
    ::close(p[0]);
    return {wait_status(pid), std::move(output)};
}

inline std::string describe_status(int status) {
    if (status == -1) return "fork/wait failed";
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
}

inline bool exited_ok(int status) {
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
inline bool killed_by(int status, int sig) {
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

}  // namespace stockade::test
