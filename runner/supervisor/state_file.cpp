#include "runner/supervisor/state_file.hpp"

#include <charconv>
#include <ctime>

#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/table.hpp"
#include "runner/supervisor/api_socket.hpp"

namespace stockade {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxStateBytes = 1 << 20;

constexpr NamedValue<SandboxState> kStateNames[] = {
    {SandboxState::creating, "creating"}, {SandboxState::created, "created"},
    {SandboxState::running, "running"},   {SandboxState::paused, "paused"},
    {SandboxState::stopped, "stopped"},
};

json or_null(const std::string& s) {
    return s.empty() ? json() : json(s);
}

// A field of the expected type, or `fallback` when it is missing or null.
template <class T>
Result<T> field(const json& j, const char* name, T fallback, std::string_view origin) {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const json::exception&) {
        return fail("{}: \"{}\" has the wrong type", origin, name);
    }
}

}  // namespace

std::string_view to_string(SandboxState state) {
    return name_of(kStateNames, state);
}

std::string state_dir(std::string_view id) {
    return fmt::format("{}/{}", kStateRoot, id);
}

std::string state_file_path(std::string_view dir) {
    return fmt::format("{}/state.json", dir);
}

std::string state_to_json(const StateRecord& r) {
    json host = {{"cgroup_leaf", or_null(r.host.cgroup_leaf)},
                 {"jail_root", or_null(r.host.jail_root)},
                 {"taps", r.host.taps},
                 {"mcs_file", or_null(r.host.mcs_file)}};
    json j = {{"id", r.id},
              {"state", to_string(r.state)},
              {"pid", r.pid},
              {"pid_start_time", r.pid_start_time},
              {"sandbox_pid", r.sandbox_pid == 0 ? json() : json(r.sandbox_pid)},
              {"created", or_null(r.created)},
              {"started", or_null(r.started)},
              {"finished", or_null(r.finished)},
              {"vcpus", r.vcpus},
              {"memory_mib", r.memory_mib},
              {"argv", r.argv},
              {"run_args", r.run_args},
              {"run_cwd", or_null(r.run_cwd)},
              {"detached", r.detached},
              {"guest_cid", r.guest_cid == 0 ? json() : json(r.guest_cid)},
              {"exit_status", r.exit_status ? json(*r.exit_status) : json()},
              {"stdout_log", or_null(r.stdout_log)},
              {"stderr_log", or_null(r.stderr_log)},
              {"bundle", or_null(r.bundle)},
              {"host", std::move(host)}};
    return j.dump(2) + "\n";
}

Result<StateRecord> state_from_json(std::string_view text, std::string_view origin) {
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail("{}: not a JSON object", origin);
    StateRecord r;
    r.id = STOCKADE_TRY(field<std::string>(j, "id", "", origin));
    const auto state = STOCKADE_TRY(field<std::string>(j, "state", "stopped", origin));
    // A state this version does not know is not a live one to it.
    r.state = value_named(kStateNames, state).value_or(SandboxState::stopped);
    r.pid = STOCKADE_TRY(field<pid_t>(j, "pid", 0, origin));
    r.pid_start_time = STOCKADE_TRY(field<std::uint64_t>(j, "pid_start_time", 0, origin));
    r.sandbox_pid = STOCKADE_TRY(field<pid_t>(j, "sandbox_pid", 0, origin));
    r.created = STOCKADE_TRY(field<std::string>(j, "created", "", origin));
    r.started = STOCKADE_TRY(field<std::string>(j, "started", "", origin));
    r.finished = STOCKADE_TRY(field<std::string>(j, "finished", "", origin));
    r.vcpus = STOCKADE_TRY(field<std::uint32_t>(j, "vcpus", 0, origin));
    r.memory_mib = STOCKADE_TRY(field<std::uint64_t>(j, "memory_mib", 0, origin));
    r.argv = STOCKADE_TRY(field<std::vector<std::string>>(j, "argv", {}, origin));
    r.run_args = STOCKADE_TRY(field<std::vector<std::string>>(j, "run_args", {}, origin));
    r.run_cwd = STOCKADE_TRY(field<std::string>(j, "run_cwd", "", origin));
    r.detached = STOCKADE_TRY(field<bool>(j, "detached", false, origin));
    if (auto it = j.find("guest_cid"); it != j.end() && !it->is_null())
        r.guest_cid = STOCKADE_TRY(field<std::uint32_t>(j, "guest_cid", 0, origin));
    if (auto it = j.find("exit_status"); it != j.end() && !it->is_null())
        r.exit_status = STOCKADE_TRY(field<int>(j, "exit_status", 0, origin));
    r.stdout_log = STOCKADE_TRY(field<std::string>(j, "stdout_log", "", origin));
    r.stderr_log = STOCKADE_TRY(field<std::string>(j, "stderr_log", "", origin));
    r.bundle = STOCKADE_TRY(field<std::string>(j, "bundle", "", origin));
    if (auto it = j.find("host"); it != j.end() && it->is_object()) {
        const std::string where = fmt::format("{} (host)", origin);
        r.host.cgroup_leaf = STOCKADE_TRY(field<std::string>(*it, "cgroup_leaf", "", where));
        r.host.jail_root = STOCKADE_TRY(field<std::string>(*it, "jail_root", "", where));
        r.host.taps = STOCKADE_TRY(field<std::vector<std::string>>(*it, "taps", {}, where));
        r.host.mcs_file = STOCKADE_TRY(field<std::string>(*it, "mcs_file", "", where));
    }
    return r;
}

Result<> write_state_file(std::string_view dir, const StateRecord& record) {
    return write_file_atomic(state_file_path(dir), state_to_json(record));
}

Result<StateRecord> read_state_file(std::string_view dir) {
    const std::string path = state_file_path(dir);
    auto text = STOCKADE_TRY(read_text_file(path, kMaxStateBytes));
    return state_from_json(text, path);
}

StateRecord with_liveness(StateRecord record, std::optional<std::uint64_t> start_time) {
    if (record.state != SandboxState::stopped && start_time != record.pid_start_time) {
        record.state = SandboxState::stopped;
        record.exit_status.reset();
    }
    return record;
}

Result<StateRecord> read_live_state(
    std::string_view dir, const std::function<std::optional<std::uint64_t>(pid_t)>& start_time_of) {
    StateRecord record = STOCKADE_TRY(read_state_file(dir));
    if (record.state == SandboxState::stopped) return record;
    const auto start_time = record.pid > 0 ? start_time_of(record.pid) : std::nullopt;
    if (start_time == record.pid_start_time) return record;
    // Gone or replaced: a supervisor that finished since the first read has said how.
    if (auto again = read_state_file(dir); again && again->state == SandboxState::stopped)
        return std::move(*again);
    return with_liveness(std::move(record), start_time);
}

std::optional<std::uint64_t> stat_start_time(std::string_view stat) {
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so count fields from the
    // last ')'; STATE is field 3, starttime field 22.
    const auto close = stat.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = stat.substr(close + 1);
    for (int field = 3; field <= 22; ++field) {
        const auto start = rest.find_first_not_of(' ');
        if (start == std::string_view::npos) return std::nullopt;
        rest.remove_prefix(start);
        const auto end = std::min(rest.find(' '), rest.size());
        if (field == 22) {
            std::uint64_t v = 0;
            const auto [p, ec] = std::from_chars(rest.data(), rest.data() + end, v);
            if (ec != std::errc() || p != rest.data() + end) return std::nullopt;
            return v;
        }
        rest.remove_prefix(end);
    }
    return std::nullopt;
}

std::optional<std::uint64_t> process_start_time(pid_t pid) {
    auto text = read_text_file(fmt::format("/proc/{}/stat", pid), 4096);
    if (!text) return std::nullopt;
    // A zombie has finished (a supervisor has cleaned up by then); only its parent, an
    // engine's shim perhaps, has not reaped it yet.
    if (const auto close = text->rfind(')');
        close != std::string::npos && text->compare(close, 3, ") Z") == 0)
        return std::nullopt;
    return stat_start_time(*text);
}

std::string rfc3339_utc(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace stockade
