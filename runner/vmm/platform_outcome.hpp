#pragma once
// What a platform event (runner/devices/platform.hpp) means for a run: nothing, "the guest
// is ready", or a stop with its reason. Pure, so every mapping is unit-tested.
#include "runner/devices/platform.hpp"
#include "runner/vmm/vm_control.hpp"

namespace stockade {

struct PlatformOutcome {
    enum class Action { none, ready, stop, stop_after_grace };
    Action action = Action::none;
    StopReason reason{StopKind::host_error, 0, ""};
    int grace_ms = 0;  // stop_after_grace: how long the guest may still run
};

// A panicking kernel resets right after printing (panic=-1); the grace period covers one
// that hangs instead.
inline constexpr int kPanicGraceMs = 2000;

[[nodiscard]] PlatformOutcome outcome_of(const PlatformEvent& event);

// The text for stockade-init's failure code (guest/abi.hpp), "failure code N" if unknown.
[[nodiscard]] std::string init_failure_text(std::uint8_t code);

}  // namespace stockade
