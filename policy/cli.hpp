#pragma once
// `stockade policy ...`: the runner's main dispatches here with the arguments after "policy".
//
//   stockade policy check FILE    validate; exit 0, or 125 with the error on stderr
//   stockade policy show [FILE]   the effective policy (FILE over the defaults, or the
//                                 defaults alone) and the seccomp allowlists, as JSON
//
// show prints {"policy": {...}, "seccomp_profiles": [...]}; "policy" is itself a complete
// policy file (check accepts it and it means the same). The profiles come from the runner,
// which alone knows its threads and their ioctls: it passes them through the hook.
#include <functional>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

#include "policy/policy.hpp"
#include "policy/seccomp.hpp"

namespace stockade::policy {

struct PolicyCliHooks {
    // The per-thread seccomp profiles that the effective policy gives; unset: none listed.
    std::function<std::vector<SeccompProfile>(const Policy&)> seccomp_profiles;
};

[[nodiscard]] int policy_cli(std::span<const std::string> args, const PolicyCliHooks& hooks = {});
[[nodiscard]] int policy_cli(std::span<const std::string> args, const PolicyCliHooks& hooks,
                             std::ostream& out, std::ostream& err);

}  // namespace stockade::policy
