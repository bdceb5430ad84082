// libFuzzer target: the control API's request path as the API thread runs it, from bytes a
// client sends: HttpConnection (Boost.Beast's parser with stockade's limits) fed in chunks the
// input chooses, then api::handle on every request it yields, against a controller that
// answers like a sandbox. It must never crash or hang, every fault must be Firecracker's
// JSON shape, and a request must never be yielded with a body over the limit.
#include <cstdint>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "runner/api/http_connection.hpp"
#include "runner/api/routes.hpp"

using namespace stockade;

namespace {

struct Controller : api::ApiController {
    bool paused_ = false;
    std::string id() const override { return "fuzz"; }
    std::string version() const override { return "0"; }
    bool paused() const override { return paused_; }
    Result<> pause() override {
        paused_ = true;
        return {};
    }
    Result<> resume() override {
        paused_ = false;
        return {};
    }
    nlohmann::json machine_config() const override { return {{"vcpu_count", 1}}; }
    nlohmann::json vm_config() const override { return nlohmann::json::object(); }
    nlohmann::json metrics() const override { return nlohmann::json::object(); }
    Result<> flush_metrics() override { return {}; }
    Result<> start_workload() override { return {}; }
    Result<> power_off() override { return {}; }
    Result<> signal_workload(int signal) override {
        if (signal < 1 || signal > 64) __builtin_trap();
        return {};
    }
    Result<> exec(guest_control::ExecRequest, UniqueFd&, std::string, std::string) override {
        return {};
    }
    Result<nlohmann::json> snapshot(bool, std::vector<UniqueFd>) override {
        return nlohmann::json::object();
    }
};

void check(const api::Response& r) {
    if (r.status < 200 || r.status > 599) __builtin_trap();
    if (r.status >= 400) {
        auto j = nlohmann::json::parse(r.body, nullptr, false);
        if (j.is_discarded() || !j.contains("fault_message") || !j["fault_message"].is_string())
            __builtin_trap();
    }
    (void)api::serialize(r, true);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

// Input: bytes; each 0xff byte followed by one more byte ends a chunk (the client's write).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Controller c;
    api::HttpConnection conn;
    std::size_t at = 0;
    while (at < size) {
        std::size_t end = at;
        while (end < size && data[end] != 0xff)
            ++end;
        std::span<const char> chunk(reinterpret_cast<const char*>(data) + at, end - at);
        at = end + 2;
        for (int rounds = 0; rounds < 64; ++rounds) {
            auto outcome = conn.feed(chunk);
            chunk = {};
            if (outcome.error) {
                check(*outcome.error);
                return 0;  // the server closes the connection after a fault
            }
            if (!outcome.request) break;
            if (outcome.request->body.size() > api::kMaxBodyBytes) __builtin_trap();
            const api::Handled h = api::handle(*outcome.request, c);
            check(h.response);
            // What an exec asks must be what stockade-init accepts.
            if (h.exec) {
                const auto bytes =
                    guest_control::encode({guest_control::MessageType::exec, 0, *h.exec});
                auto back = guest_control::decode(bytes);
                if (!back || !*back || (*back)->message.exec != h.exec) __builtin_trap();
            }
            if (conn.pending() == 0) break;
        }
    }
    return 0;
}
