#pragma once
// The control API's operations, with Firecracker's paths and JSON shapes where Firecracker
// has the operation (its swagger file is the reference): GET / (instance info), PATCH /vm
// (Paused/Resumed), GET /machine-config, GET /vm/config, GET /metrics, PUT /actions.
// Errors are {"fault_message": ...} with Firecracker's status codes (400 for a request it
// cannot serve, including an unknown method or path). Pure: the sandbox answers through
// ApiController, so routing and error shapes are unit-tested without a VM.
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
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
};

[[nodiscard]] Response handle(const Request& request, ApiController& controller);

}  // namespace stockade::api
