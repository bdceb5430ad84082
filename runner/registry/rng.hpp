#pragma once
// virtio-rng: `--rng`, a device the guest draws entropy from (runner/virtio/rng.hpp).
#include "runner/registry/device_kind.hpp"

namespace stockade {

struct RngKind {
    static constexpr std::string_view kName = "rng";
    static constexpr std::uint32_t kVirtioId = virtio::kTypeRng;

    struct Options {
        bool enabled = false;
    };
    struct Spec {
        bool enabled = false;
    };
    struct Handed {};  // nothing opened: the device reads getrandom
    using Host = NoHostState;

    static void add_options(CLI::App& app, Options& options);
    [[nodiscard]] static Result<> apply(const Options& options, Spec& spec) {
        spec.enabled = options.enabled;
        return {};
    }
    [[nodiscard]] static Result<> validate(const Spec&) { return {}; }
    [[nodiscard]] static Result<std::optional<Handed>> open(const Spec& spec, OpenContext&) {
        return spec.enabled ? std::optional<Handed>(Handed{}) : std::nullopt;
    }
    [[nodiscard]] static Result<Host> claim(Handed&, const Spec&, ClaimContext&) { return {}; }
    [[nodiscard]] static std::vector<int> fds(const Handed&) { return {}; }
    [[nodiscard]] static std::size_t device_count(const Handed&) { return 1; }
    [[nodiscard]] static Result<std::vector<BuiltDevice>> build(Handed, BuildContext& ctx);
    static void add_seccomp_rules(DeviceThreadProfiles profiles);
};

}  // namespace stockade
