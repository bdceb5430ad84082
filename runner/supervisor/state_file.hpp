#pragma once
// The sandbox's state file, /run/stockade/ID/state.json: what `stockade ps`, `inspect` and
// `rm` know of a sandbox without talking to it. Only the supervisor writes it, atomically
// (write_file_atomic), on each change; readers take it as it is, except that a supervisor
// that is gone (its pid no longer runs, or runs another process: the start time differs)
// means the sandbox is stopped, whatever the file last said. `host` lists what the
// supervisor set up on the host, so that `rm` can remove it after a supervisor that died
// without cleaning up.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace stockade {

enum class SandboxState { creating, created, running, paused, stopped };

[[nodiscard]] std::string_view to_string(SandboxState state);

// What the supervisor made on the host for the sandbox; empty: nothing of that kind.
struct HostRecord {
    std::string cgroup_leaf;        // the leaf's directory
    std::string jail_root;          // the empty jail directory
    std::vector<std::string> taps;  // taps netsetup made (its record: /run/stockade/net/ID.json)
    std::string mcs_file;           // the MCS registry's reservation file
    bool operator==(const HostRecord&) const = default;
};

struct StateRecord {
    std::string id;
    SandboxState state = SandboxState::creating;
    pid_t pid = 0;                     // the supervisor
    std::uint64_t pid_start_time = 0;  // its start time (/proc/PID/stat field 22, clock ticks)
    pid_t sandbox_pid = 0;             // the sandbox process; 0 until it is forked
    std::string created, started, finished;  // RFC 3339 UTC; empty: not yet
    std::uint32_t vcpus = 0;
    std::uint64_t memory_mib = 0;
    std::vector<std::string> argv;  // the workload
    // What `run` or `create` was given (its options and the workload), for snapshots
    std::vector<std::string> run_args;
    std::string run_cwd;  // the directory its relative paths were relative to
    bool detached = false;
    std::uint32_t guest_cid = 0;     // its vsock CID (stdio over vsock), else 0
    std::optional<int> exit_status;  // once stopped, when known
    std::string stdout_log, stderr_log;
    std::string bundle;  // an OCI container's bundle directory (runner/cli/oci_runtime.hpp)
    HostRecord host;
    bool operator==(const StateRecord&) const = default;
};

// /run/stockade/ID and its state.json.
[[nodiscard]] std::string state_dir(std::string_view id);
[[nodiscard]] std::string state_file_path(std::string_view dir);

[[nodiscard]] std::string state_to_json(const StateRecord& record);
// Tolerant of missing fields (they keep their defaults); refuses what is not a JSON object.
// `origin` names the file in errors.
[[nodiscard]] Result<StateRecord> state_from_json(std::string_view text, std::string_view origin);

[[nodiscard]] Result<> write_state_file(std::string_view dir, const StateRecord& record);
[[nodiscard]] Result<StateRecord> read_state_file(std::string_view dir);

// The record as it stands when the supervisor's start time is now `start_time` (nullopt: no
// such process): unless that is the recorded one, the sandbox is stopped and its exit
// status unknown.
[[nodiscard]] StateRecord with_liveness(StateRecord record,
                                        std::optional<std::uint64_t> start_time);

// Field 22 (starttime) of a /proc/PID/stat text; nullopt when it is malformed.
[[nodiscard]] std::optional<std::uint64_t> stat_start_time(std::string_view stat);
// Of a running process; nullopt when there is none, or only a zombie.
[[nodiscard]] std::optional<std::uint64_t> process_start_time(pid_t pid);

// The state file of `dir` as it stands now. A supervisor writes "stopped" with the exit status
// and then exits, so one found gone after its file was read said "running" may have finished
// in between: the file is read once more, and only a record still not stopped is judged by
// with_liveness. `start_time_of` is process_start_time (tests pass their own).
[[nodiscard]] Result<StateRecord> read_live_state(
    std::string_view dir,
    const std::function<std::optional<std::uint64_t>(pid_t)>& start_time_of = process_start_time);

// "2026-12-05T21:49:49Z".
[[nodiscard]] std::string rfc3339_utc(std::chrono::system_clock::time_point t);

}  // namespace stockade
