#pragma once
// Runs a program for a lab test: feeds stdin, captures stdout and stderr, optionally
// sends a signal once stdout shows a marker, and reports status and duration.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace stockade::lab {

struct RunOptions {
    std::string stdin_data;
    bool close_stdin = true;    // false: stdin stays /dev/null
    std::optional<int> signal;  // sent once stdout contains signal_after
    std::string signal_after;
    std::chrono::seconds timeout{300};  // then SIGKILL, and status -1
    // Once stdout first contains `mark`: the time is recorded (RunResult::mark_seconds),
    // on_mark is called with the child's pid, and the child is killed if kill_at_mark.
    std::string mark;
    std::function<void(pid_t)> on_mark;
    bool kill_at_mark = false;
};

struct RunResult {
    int status = -1;  // exit status, or 128+signal, or -1 on timeout
    std::string out, err;
    double seconds = 0;
    double mark_seconds = -1;  // when stdout first contained RunOptions::mark; -1: never
    [[nodiscard]] std::string describe() const;
};

RunResult run_process(const std::vector<std::string>& argv, const RunOptions& options = {});

// `stockade run ARGS...` with the binary of this build tree.
RunResult run_stockade(const std::vector<std::string>& args, const RunOptions& options = {});

std::string build_dir();
// Polls `done` every 200 ms until it is true (true) or `limit` has passed (false).
bool eventually(const std::function<bool()>& done,
                std::chrono::seconds limit = std::chrono::seconds(60));
std::string read_text(const std::string& path);
// The release (`uname -r`) of the kernel a plain `stockade run` boots: stockade's own
// (build/guest/kernel.version), or the file STOCKADE_TEST_KERNEL_RELEASE_FILE names when a
// test runs against another kernel (STOCKADE_KERNEL; lab.lab_boot_cloud).
std::string guest_kernel_release();

}  // namespace stockade::lab
