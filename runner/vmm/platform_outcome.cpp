#include "runner/vmm/platform_outcome.hpp"

#include <fmt/format.h>

namespace stockade {
namespace {

using Action = PlatformOutcome::Action;

PlatformOutcome stop(StopKind kind, int status, std::string detail) {
    return {Action::stop, {kind, status, std::move(detail)}, 0};
}

PlatformOutcome agent_outcome(std::uint32_t value) {
    const std::uint8_t arg = guest_abi::arg_of(value);
    switch (guest_abi::event_of(value)) {
        case guest_abi::Event::ready:
            return {Action::ready, {}, 0};
        case guest_abi::Event::exited:
            return stop(StopKind::workload_exited, arg, "");
        case guest_abi::Event::init_failed:
            return stop(StopKind::init_failed, 0, init_failure_text(arg));
        case guest_abi::Event::reboot:
            return stop(StopKind::guest_reboot, 0, "requested in the guest");
        case guest_abi::Event::poweroff:
            return stop(StopKind::guest_poweroff, 0, "requested in the guest");
    }
    return {};  // an event this runner does not know: ignored
}

}  // namespace

std::string init_failure_text(std::uint8_t code) {
    const std::string_view text =
        guest_abi::init_failure_text(static_cast<guest_abi::InitFailure>(code));
    return text.empty() ? fmt::format("failure code {}", code) : std::string(text);
}

PlatformOutcome outcome_of(const PlatformEvent& e) {
    switch (e.kind) {
        case PlatformEventKind::reset:
            return stop(StopKind::guest_reboot, 0, "keyboard controller reset");
        case PlatformEventKind::poweroff:
            return stop(StopKind::guest_poweroff, 0, "ACPI S5");
        case PlatformEventKind::panic:
            return {Action::stop_after_grace,
                    {StopKind::guest_panic, 0, "reported through pvpanic"},
                    kPanicGraceMs};
        case PlatformEventKind::agent:
            return agent_outcome(e.agent_value);
    }
    return {};
}

}  // namespace stockade
