#pragma once
// What the sandbox process tells its supervisor about itself, one byte per change on a
// non-blocking pipe (SandboxResources::status_pipe), so the supervisor can keep the state file
// (/run/stockade/ID/state.json) true without parsing anything but these bytes. Any other byte
// is ignored: the sandbox process is the less trusted of the two.
#include <optional>

namespace stockade {

enum class SandboxStatus : char {
    ready = 'R',    // stockade-init is up: the workload runs (or, after `create`, waits)
    started = 'S',  // a `create`d sandbox was told to start its workload
    paused = 'P',   // every vCPU is out of KVM_RUN
    resumed = 'U',  // running again
};

[[nodiscard]] constexpr std::optional<SandboxStatus> sandbox_status_of(char c) {
    switch (c) {
        case 'R':
        case 'S':
        case 'P':
        case 'U':
            return static_cast<SandboxStatus>(c);
        default:
            return std::nullopt;
    }
}

}  // namespace stockade
