#include "runner/api/routes.hpp"

#include <string_view>

#include <fmt/format.h>

#include "base/signal_name.hpp"

namespace stockade::api {
namespace {

using nlohmann::json;

Response ok(const json& body) {
    return {200, to_json_text(body)};
}
Response no_content() {
    return {204, ""};
}

// The body as a JSON object whose keys are all in `known`; else the fault to answer.
Result<json> object_body(const Request& r, std::initializer_list<std::string_view> known) {
    json body = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object())
        return fail("the request body must be a JSON object");
    for (const auto& [key, value] : body.items()) {
        bool found = false;
        for (std::string_view k : known)
            found |= key == k;
        if (!found) return fail("unknown field \"{}\"", key);
    }
    return body;
}

Response patch_vm(const Request& r, ApiController& c) {
    auto body = object_body(r, {"state"});
    if (!body) return fault(400, body.error().message);
    const json* state = body->contains("state") ? &(*body)["state"] : nullptr;
    if (state == nullptr || !state->is_string())
        return fault(400, "\"state\" must be \"Paused\" or \"Resumed\"");
    const std::string s = state->get<std::string>();
    Result<> done;
    if (s == "Paused")
        done = c.pause();
    else if (s == "Resumed")
        done = c.resume();
    else
        return fault(400,
                     fmt::format("\"state\" must be \"Paused\" or \"Resumed\", not \"{}\"", s));
    if (!done) return fault(400, done.error().message);
    return no_content();
}

Response put_actions(const Request& r, ApiController& c) {
    auto body = object_body(r, {"action_type"});
    if (!body) return fault(400, body.error().message);
    const json* type = body->contains("action_type") ? &(*body)["action_type"] : nullptr;
    if (type == nullptr || !type->is_string()) return fault(400, "\"action_type\" is missing");
    const std::string t = type->get<std::string>();
    Result<> done;
    if (t == "InstanceStart")
        done = c.start_workload();
    else if (t == "FlushMetrics")
        done = c.flush_metrics();
    else if (t == "SendCtrlAltDel")
        done = c.power_off();
    else
        return fault(400, fmt::format("unknown action_type \"{}\"", t));
    if (!done) return fault(400, done.error().message);
    return no_content();
}

// {"signal": 9} or {"signal": "KILL"} / "SIGKILL".
Response put_kill(const Request& r, ApiController& c) {
    auto body = object_body(r, {"signal"});
    if (!body) return fault(400, body.error().message);
    const json* sig = body->contains("signal") ? &(*body)["signal"] : nullptr;
    std::optional<int> n;
    if (sig != nullptr && sig->is_number_integer()) {
        const auto v = sig->get<std::int64_t>();
        if (v >= 1 && v <= 64) n = static_cast<int>(v);
    } else if (sig != nullptr && sig->is_string()) {
        n = parse_signal(sig->get<std::string>());
    }
    if (!n) return fault(400, "\"signal\" must be a signal number (1-64) or name (\"TERM\")");
    if (auto done = c.signal_workload(*n); !done) return fault(400, done.error().message);
    return no_content();
}

// `j[key]` when it is an unsigned integer of at most `max`.
std::optional<std::uint64_t> unsigned_in(const json& j, const char* key, std::uint64_t max) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned() || it->get<std::uint64_t>() > max)
        return std::nullopt;
    return it->get<std::uint64_t>();
}

// {"rows": R, "columns": C} in `j`, each 0 to 65535.
std::optional<guest_control::WindowSize> window_in(const json& j) {
    const auto rows = unsigned_in(j, "rows", 0xffff), columns = unsigned_in(j, "columns", 0xffff);
    if (!rows || !columns) return std::nullopt;
    return guest_control::WindowSize{static_cast<std::uint16_t>(*rows),
                                     static_cast<std::uint16_t>(*columns)};
}

// {"id": N, "rows": R, "columns": C}: N an exec's id (the exec stream's Stockade-Exec-Id).
Response put_exec_resize(const Request& r, ApiController& c) {
    auto body = object_body(r, {"id", "rows", "columns"});
    if (!body) return fault(400, body.error().message);
    const auto id = unsigned_in(*body, "id", 0xffff'ffffu);
    const auto window = window_in(*body);
    if (!id || *id == 0 || !window)
        return fault(400,
                     "the body must be {\"id\": EXEC (1 or more), \"rows\": R, \"columns\": C} "
                     "(0 to 65535)");
    if (auto done = c.resize_exec(static_cast<std::uint32_t>(*id), *window); !done)
        return fault(404, done.error().message);
    return no_content();
}

Result<std::vector<std::string>> string_list(const json& body, std::string_view key) {
    if (!body.contains(key)) return std::vector<std::string>{};
    const json& v = body[std::string(key)];
    if (!v.is_array()) return fail("\"{}\" must be an array of strings", key);
    std::vector<std::string> out;
    for (const json& item : v) {
        if (!item.is_string()) return fail("\"{}\" must be an array of strings", key);
        out.push_back(item.get<std::string>());
    }
    return out;
}

Response respond(const Request& r, std::string_view path, ApiController& c);

}  // namespace

Result<guest_control::ExecRequest> parse_exec_request(const Request& r) {
    const json body = STOCKADE_TRY(object_body(r, {"cmd", "env", "workdir", "stdin", "tty"}));
    guest_control::ExecRequest out;
    out.argv = STOCKADE_TRY(string_list(body, "cmd"));
    if (out.argv.empty() || out.argv.front().empty())
        return fail("\"cmd\" must name a command: [\"CMD\", \"ARG\", ...]");
    out.env = STOCKADE_TRY(string_list(body, "env"));
    for (const std::string& e : out.env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return fail("\"env\": \"{}\" is not NAME=value", e);
    // The guest takes NUL-terminated items: a NUL inside one would split it.
    for (const auto* list : {&out.argv, &out.env})
        for (const std::string& item : *list)
            if (item.find('\0') != std::string::npos)
                return fail("a NUL byte in \"cmd\" or \"env\"");
    if (body.contains("workdir")) {
        if (!body["workdir"].is_string()) return fail("\"workdir\" must be a string");
        out.workdir = body["workdir"].get<std::string>();
        if (out.workdir.empty() || out.workdir.front() != '/' ||
            out.workdir.find('\0') != std::string::npos)
            return fail("\"workdir\" must be an absolute path");
    }
    if (body.contains("stdin")) {
        if (!body["stdin"].is_boolean()) return fail("\"stdin\" must be true or false");
        out.stdin_open = body["stdin"].get<bool>();
    }
    if (body.contains("tty")) {
        // true, or the terminal's size to start with.
        const json& tty = body["tty"];
        const auto window = tty.is_object() ? window_in(tty) : std::nullopt;
        if (!tty.is_boolean() && (!window || tty.size() != 2))
            return fail("\"tty\" must be true, false or {{\"rows\": R, \"columns\": C}}");
        out.terminal = tty.is_object() || tty.get<bool>();
        if (window) out.window = *window;
    }
    if (guest_control::encode({guest_control::MessageType::exec, 0, out}).size() >
        guest_control::kMaxControlMessage)
        return fail("the exec request is larger than {} bytes", guest_control::kMaxControlMessage);
    return out;
}

Result<SnapshotRequest> parse_snapshot_request(const Request& r) {
    if (r.body.empty()) return SnapshotRequest{};
    // Firecracker's body names paths for the VMM to open; stockade's sandbox opens none.
    auto body = object_body(r, {"leave_paused", "snapshot_path", "mem_file_path", "snapshot_type"});
    if (!body) return std::unexpected(std::move(body).error());
    if (body->contains("snapshot_path") || body->contains("mem_file_path"))
        return fail(
            "stockade's sandbox opens no paths: the snapshot's files come with the "
            "request as descriptors (use `stockade snapshot create ID DIR`)");
    if (body->contains("snapshot_type") && (*body)["snapshot_type"] != "Full")
        return fail("\"snapshot_type\": only \"Full\" snapshots are made");
    SnapshotRequest out;
    if (body->contains("leave_paused")) {
        if (!(*body)["leave_paused"].is_boolean())
            return fail("\"leave_paused\" must be true or false");
        out.leave_paused = (*body)["leave_paused"].get<bool>();
    }
    return out;
}

Handled handle(const Request& r, ApiController& c) {
    std::string_view path = r.target;
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    if (path == "/exec" && r.method == "PUT") {
        auto exec = parse_exec_request(r);
        if (!exec) return {fault(400, exec.error().message), std::nullopt, std::nullopt};
        return {{200, ""}, std::move(*exec), std::nullopt};
    }
    if (path == "/snapshot/create" && r.method == "PUT") {
        auto snapshot = parse_snapshot_request(r);
        if (!snapshot) return {fault(400, snapshot.error().message), std::nullopt, std::nullopt};
        return {{200, ""}, std::nullopt, *snapshot};
    }
    return {respond(r, path, c), std::nullopt, std::nullopt};
}

namespace {

Response respond(const Request& r, std::string_view path, ApiController& c) {
    const std::string_view m = r.method;
    if (path == "/" && m == "GET")
        return ok({{"app_name", "stockade"},
                   {"id", c.id()},
                   {"state", c.paused() ? "Paused" : "Running"},
                   {"vmm_version", c.version()}});
    if (path == "/machine-config" && m == "GET") return ok(c.machine_config());
    if (path == "/vm/config" && m == "GET") return ok(c.vm_config());
    if (path == "/metrics" && m == "GET") return ok(c.metrics());
    if (path == "/vm" && m == "PATCH") return patch_vm(r, c);
    if (path == "/actions" && m == "PUT") return put_actions(r, c);
    if (path == "/kill" && m == "PUT") return put_kill(r, c);
    if (path == "/exec/resize" && m == "PUT") return put_exec_resize(r, c);
    // Firecracker loads a snapshot into a VMM that has not booted; every stockade API socket
    // belongs to a sandbox that has.
    if (path == "/snapshot/load" && m == "PUT")
        return fault(400,
                     "a snapshot is loaded into a new sandbox, not into this one: `stockade "
                     "create --restore DIR` (left paused until `start` or a resume, as a load "
                     "without resume_vm) or `stockade snapshot restore DIR`");
    return fault(400, fmt::format("Invalid request method and/or path: {} {}", m, path));
}

}  // namespace

}  // namespace stockade::api
