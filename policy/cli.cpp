#include "policy/cli.hpp"

#include <iostream>

#include <nlohmann/json.hpp>

namespace stockade::policy {
namespace {

constexpr int kFailed = 125;  // stockade itself failed (docker/podman convention)

constexpr const char* kUsage =
    "usage: stockade policy check FILE    validate a policy file\n"
    "       stockade policy show [FILE]   print the effective policy and seccomp allowlists\n";

int check(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    if (args.size() != 1) {
        err << "stockade policy check: expected one FILE\n" << kUsage;
        return kFailed;
    }
    auto p = load_policy_file(args[0]);
    if (!p) {
        err << "stockade policy check: " << p.error().message << '\n';
        return kFailed;
    }
    out << args[0] << ": valid policy (version " << kPolicyVersion << ")\n";
    return 0;
}

int show(std::span<const std::string> args, const PolicyCliHooks& hooks, std::ostream& out,
         std::ostream& err) {
    if (args.size() > 1) {
        err << "stockade policy show: expected at most one FILE\n" << kUsage;
        return kFailed;
    }
    Policy effective = default_policy();
    if (args.size() == 1) {
        auto p = load_policy_file(args[0]);
        if (!p) {
            err << "stockade policy show: " << p.error().message << '\n';
            return kFailed;
        }
        effective = std::move(*p);
    }
    nlohmann::json profiles = nlohmann::json::array();
    if (hooks.seccomp_profiles)
        for (const auto& profile : hooks.seccomp_profiles(effective))
            profiles.push_back(profile.to_json());
    nlohmann::json doc = {{"policy", to_json(effective)}, {"seccomp_profiles", profiles}};
    out << doc.dump(2) << '\n';
    return 0;
}

}  // namespace

int policy_cli(std::span<const std::string> args, const PolicyCliHooks& hooks, std::ostream& out,
               std::ostream& err) {
    if (args.empty()) {
        err << kUsage;
        return kFailed;
    }
    const std::string& cmd = args[0];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        out << kUsage;
        return 0;
    }
    if (cmd == "check") return check(args.subspan(1), out, err);
    if (cmd == "show") return show(args.subspan(1), hooks, out, err);
    err << "stockade policy: unknown command \"" << cmd << "\"\n" << kUsage;
    return kFailed;
}

int policy_cli(std::span<const std::string> args, const PolicyCliHooks& hooks) {
    return policy_cli(args, hooks, std::cout, std::cerr);
}

}  // namespace stockade::policy
