#pragma once
// virtio-vsock on vhost-vsock, which carries the workload's stdio and status: `--stdio
// vsock|serial` (runner/virtio/vsock.hpp is the device; runner/stdio/stdio_relay.hpp copies
// the streams).
#include "runner/registry/device_kind.hpp"

namespace stockade {

// How the workload's stdio and status travel (guest/abi.hpp): virtio-vsock on the host's
// vhost-vsock, or the serial console. automatic: vsock when /dev/vhost-vsock opens.
enum class StdioMode { automatic, vsock, serial };

struct VsockKind {
    static constexpr std::string_view kName = "vsock";
    static constexpr std::uint32_t kVirtioId = virtio::kTypeVsock;

    struct Options {
        std::string stdio;
    };
    struct Spec {
        StdioMode stdio = StdioMode::automatic;
    };
    struct Handed {
        UniqueFd vhost;
        std::uint32_t cid = 0;   // after claim: the guest's CID, held by `vhost`
        UniqueFd listener;       // after claim: where stockade-init connects
        std::uint32_t port = 0;  // the listener's
        // After claim, restoring: the socket and entropy of the restored notice (VsockStdio).
        UniqueFd restored_socket;
        std::string restored_entropy;
    };
    using Host = NoHostState;

    static void add_options(CLI::App& app, Options& options);
    [[nodiscard]] static Result<> apply(const Options& options, Spec& spec);
    [[nodiscard]] static Result<> validate(const Spec&) { return {}; }
    [[nodiscard]] static Result<std::optional<Handed>> open(const Spec& spec, OpenContext& ctx);
    [[nodiscard]] static Result<Host> claim(Handed& handed, const Spec& spec, ClaimContext& ctx);
    [[nodiscard]] static std::vector<int> fds(const Handed& handed) {
        std::vector<int> out{handed.vhost.get(), handed.listener.get()};
        if (handed.restored_socket) out.push_back(handed.restored_socket.get());
        return out;
    }
    [[nodiscard]] static std::size_t device_count(const Handed&) { return 1; }
    [[nodiscard]] static Result<std::vector<BuiltDevice>> build(Handed handed, BuildContext& ctx);
    static void add_seccomp_rules(DeviceThreadProfiles profiles);
};

}  // namespace stockade
