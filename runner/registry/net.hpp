#pragma once
// virtio-net on a fresh tap: `--net SPEC` (runner/virtio/net.hpp is the device; netsetup/
// makes the tap, bridge, VLAN and MAC filter, and the supervisor keeps its handle to tear
// them down); or on the user's existing tap, `--net tap=NAME`, which stays as it is; or in an
// OCI container's network namespace, `--net netns=PATH`, joined to the veth CNI put there.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netsetup/netns.hpp"
#include "netsetup/network.hpp"
#include "runner/registry/device_kind.hpp"
#include "runner/registry/net_spec.hpp"

namespace stockade {

struct NetKind {
    static constexpr std::string_view kName = "net";
    static constexpr std::uint32_t kVirtioId = virtio::kTypeNet;

    struct Options {
        std::string text;
        bool given = false;
    };
    using Spec = std::optional<NetDeviceSpec>;
    struct Handed {
        net::NetSpec spec;            // resolved with the sandbox's id
        std::vector<UniqueFd> taps;   // after claim: one per queue pair
        std::vector<UniqueFd> vhost;  // one /dev/vhost-net per queue pair; none: userspace
        // netns=PATH: the namespace (until claim) and its interface (netsetup/netns.hpp)
        UniqueFd netns;
        std::optional<net::NetnsInterface> veth;
        std::uint16_t queue_size = 0;  // queue_size=N; 0: the device's default
    };
    // What goes when the sandbox goes: a tap stockade made (and its bridge port and filter),
    // or the redirect put on a network namespace's veth; nothing for an existing tap, which
    // is the user's.
    struct Host {
        std::optional<net::NetworkHandle> network;
        std::optional<net::NetnsJoin> netns;
    };

    static void add_options(CLI::App& app, Options& options);
    [[nodiscard]] static Result<> apply(const Options& options, Spec& spec);
    [[nodiscard]] static Result<> validate(const Spec&) { return {}; }  // done by apply
    [[nodiscard]] static Result<std::optional<Handed>> open(const Spec& spec, OpenContext& ctx);
    [[nodiscard]] static Result<Host> claim(Handed& handed, const Spec& spec, ClaimContext& ctx);
    [[nodiscard]] static std::vector<int> fds(const Handed& handed);
    [[nodiscard]] static std::size_t device_count(const Handed&) { return 1; }
    [[nodiscard]] static Result<std::vector<BuiltDevice>> build(Handed handed, BuildContext& ctx);
    static void add_seccomp_rules(DeviceThreadProfiles profiles);
};

}  // namespace stockade
