#pragma once
// `stockade drill DIR [--network isolated|none] [--timeout S] -- CHECK...`: the one-command
// disaster-recovery rehearsal. The snapshot in DIR is restored (digests checked) into a
// fresh sandbox whose network, if it has one, is a tap on no bridge (no uplink); CHECK runs
// in it through exec, again each second until it passes or the time is up; everything is
// removed; a JSON report goes to stdout (restore time, time to a passing check, what was
// verified, CHECK's status and the tail of its output) and the exit status is CHECK's (125:
// the drill itself failed, nothing of it is left).
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "runner/supervisor/sandbox_spec.hpp"

namespace stockade::cli {

[[nodiscard]] int drill_cli(std::span<const std::string> args);

// The restored sandbox's network, cut off (`network` "isolated"): its tap keeps the guest's
// MAC (and MTU and queue count) and joins no bridge, VLAN or uplink; a tap of the user's own
// (tap=NAME) is not used. "none" refuses a spec that has a network device (its guest
// expects to find it). A spec without one is left as it is.
[[nodiscard]] Result<> isolate_network(SandboxSpec& spec, std::string_view network);

}  // namespace stockade::cli
