#pragma once
// virtio-net on a fresh tap: `--net SPEC` (runner/virtio/net.hpp is the device; netsetup/
// makes the tap, bridge, VLAN and MAC filter, and the supervisor keeps its handle to tear
// them down); or on the user's existing tap, `--net tap=NAME`, which stays as it is.
#include <optional>
#include <string>
#include <string_view>

#include "netsetup/network.hpp"
#include "runner/registry/device_kind.hpp"

namespace stockade {

// --net: everything but the runner's own keys is a netsetup spec (netsetup/README.md);
// `vhost=on|off` picks the datapath (default: vhost-net when the host has /dev/vhost-net),
// `addr=A.B.C.D/N` is the IPv4 address stockade-init gives the guest's interface (none: the
// workload configures it). `tap=NAME` names an existing tap to attach to: then only mac=
// of netsetup's keys may be given.
enum class VhostMode { automatic, on, off };
struct NetDeviceSpec {
    std::string netsetup;       // the spec handed to netsetup, runner keys removed
    bool existing_tap = false;  // tap=NAME: netsetup only resolves the spec, makes nothing
    VhostMode vhost = VhostMode::automatic;
    std::string address;  // "A.B.C.D/N", or empty
    bool operator==(const NetDeviceSpec&) const = default;
};

// Splits and checks the text of --net (no I/O; netsetup's part is validated with a
// placeholder id, the real one is the sandbox's).
[[nodiscard]] Result<NetDeviceSpec> parse_net_device_spec(std::string_view text);

struct NetKind {
    static constexpr std::string_view kName = "net";
    static constexpr std::uint32_t kVirtioId = virtio::kTypeNet;

    struct Options {
        std::string text;
        bool given = false;
    };
    using Spec = std::optional<NetDeviceSpec>;
    struct Handed {
        net::NetSpec spec;  // resolved with the sandbox's id
        UniqueFd tap;       // after claim
        UniqueFd vhost;     // invalid: the userspace datapath
    };
    // Tears the tap (and its filter) down; none for an existing tap, which is the user's.
    using Host = std::optional<net::NetworkHandle>;

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
