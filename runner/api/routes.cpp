#include "runner/api/routes.hpp"

#include <string_view>

#include <fmt/format.h>

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
    if (t == "InstanceStart") return fault(400, "the sandbox is already running");
    if (t == "FlushMetrics") {
        if (auto done = c.flush_metrics(); !done) return fault(400, done.error().message);
        return no_content();
    }
    if (t == "SendCtrlAltDel")
        return fault(400, fmt::format("{} is not supported by this stockade yet", t));
    return fault(400, fmt::format("unknown action_type \"{}\"", t));
}

}  // namespace

Response handle(const Request& r, ApiController& c) {
    std::string_view path = r.target;
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
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
    return fault(400, fmt::format("Invalid request method and/or path: {} {}", m, path));
}

}  // namespace stockade::api
