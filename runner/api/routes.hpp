#pragma once
// The control API's operations, with Firecracker's paths and JSON shapes where Firecracker
// has the operation (its swagger file is the reference): GET / (instance info), PATCH /vm
// (Paused/Resumed), GET /machine-config, GET /vm/config, GET /metrics, PUT /actions.
// Errors are {"fault_message": ...} with Firecracker's status codes (400 for a request it
// cannot serve, including an unknown method or path). Pure: the sandbox answers through
// ApiController, so routing and error shapes are unit-tested without a VM.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "guest/control.hpp"
#include "runner/api/http_connection.hpp"

namespace stockade::api {

class ApiController {
  public:
    virtual ~ApiController() = default;
    [[nodiscard]] virtual std::string id() const = 0;
    [[nodiscard]] virtual std::string version() const = 0;
    [[nodiscard]] virtual bool paused() const = 0;
    // Every vCPU out of KVM_RUN (and the guest's clock held), or running again.
    [[nodiscard]] virtual Result<> pause() = 0;
    [[nodiscard]] virtual Result<> resume() = 0;
    [[nodiscard]] virtual nlohmann::json machine_config() const = 0;  // MachineConfiguration
    [[nodiscard]] virtual nlohmann::json vm_config() const = 0;       // FullVmConfiguration
    [[nodiscard]] virtual nlohmann::json metrics() const = 0;
    // Appends metrics() as a JSON line to the metrics file (--metrics-path).
    [[nodiscard]] virtual Result<> flush_metrics() = 0;
    // Through stockade-init's control stream: start the workload of a sandbox made with
    // `create` (InstanceStart), end it and power off (SendCtrlAltDel), signal it (PUT /kill).
    [[nodiscard]] virtual Result<> start_workload() = 0;
    [[nodiscard]] virtual Result<> power_off() = 0;
    [[nodiscard]] virtual Result<> signal_workload(int signal) = 0;
    // PUT /exec: on success `client` is taken and is the exec's from here on
    // (runner/api/exec_stream.hpp): it is sent `head` first, and `client_input` is what it
    // sent after its request. On an error `client` stays the caller's.
    [[nodiscard]] virtual Result<> exec(guest_control::ExecRequest request, UniqueFd& client,
                                        std::string head, std::string client_input) = 0;
    // PUT /exec/resize: the terminal of exec `id` (one made with "tty": true) gets a new
    // window size.
    [[nodiscard]] virtual Result<> resize_exec(std::uint32_t id, guest_control::WindowSize size) {
        (void)id;
        (void)size;
        return fail("this sandbox resizes no exec's terminal");
    }
    // PUT /snapshot/create: the snapshot's parts are written to the descriptors the client
    // sent with its request (SCM_RIGHTS), never to paths: `parts` is the state, the memory,
    // then one per writable disk in order. Pauses (unless paused), saves, and resumes unless
    // `leave_paused` or it was paused before. Answers what was written.
    [[nodiscard]] virtual Result<nlohmann::json> snapshot(bool leave_paused,
                                                          std::vector<UniqueFd> parts) = 0;
};

// PUT /snapshot/create's body: {"leave_paused": bool} (optional).
struct SnapshotRequest {
    bool leave_paused = false;
};

// The request's answer; for PUT /exec, a request to hand the connection over instead
// (`exec`), which the server does with ApiController::exec.
// For PUT /snapshot/create, a request to snapshot (`snapshot`) with the descriptors that came
// with it, which the server does with ApiController::snapshot.
struct Handled {
    Response response;
    std::optional<guest_control::ExecRequest> exec;
    std::optional<SnapshotRequest> snapshot;
};
[[nodiscard]] Handled handle(const Request& request, ApiController& controller);

// PUT /exec's body: {"cmd": [...], "env": ["NAME=value", ...], "workdir": "/...",
// "stdin": bool}; only cmd is required.
[[nodiscard]] Result<guest_control::ExecRequest> parse_exec_request(const Request& request);
[[nodiscard]] Result<SnapshotRequest> parse_snapshot_request(const Request& request);

}  // namespace stockade::api
