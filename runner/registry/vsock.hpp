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
        std::uint32_t cid = 0;  // after claim: the guest's CID, held by `vhost`
        UniqueFd listener;      // after claim: where stockade-init connects
    };
    // A sandbox restored from a snapshot: its guest's init still holds the snapshot's streams,
    // which the transport reset ended (runner/virtio/vsock.hpp). Once the sandbox is ready
    // the supervisor tells init where to connect them again (tell_restored_guest).
    struct Host {
        bool restoring = false;
        std::uint32_t cid = 0;   // the guest's, the restored sandbox's own
        std::uint32_t port = 0;  // the stdio listener's
    };
    // Connects to init's listener (guest_control::kRestoredPort) from a reserved host port
    // (below 1024: only a process with CAP_NET_BIND_SERVICE binds one, which is how init knows
    // the notice is the host's and not another local user's) and sends the `restored`
    // message: the port, the host's wall clock and 32 bytes of getrandom. A guest that has
    // not yet taken its new CID drops the first answer: a few tries, 2 s each.
    [[nodiscard]] static Result<> tell_restored_guest(const Host& host);
    // Then init's second look at the clock (guest/control.hpp, kClockRequest): on the notice's
    // connection `s`, one byte within 1 s, compared (never parsed) with the request, answered
    // with the wall clock. Whether it was; a guest that sends nothing, something else or
    // closes only costs it the answer (init keeps the notice's clock).
    static bool answer_clock_request(int s);

    static void add_options(CLI::App& app, Options& options);
    [[nodiscard]] static Result<> apply(const Options& options, Spec& spec);
    [[nodiscard]] static Result<> validate(const Spec&) { return {}; }
    [[nodiscard]] static Result<std::optional<Handed>> open(const Spec& spec, OpenContext& ctx);
    [[nodiscard]] static Result<Host> claim(Handed& handed, const Spec& spec, ClaimContext& ctx);
    [[nodiscard]] static std::vector<int> fds(const Handed& handed) {
        return {handed.vhost.get(), handed.listener.get()};
    }
    [[nodiscard]] static std::size_t device_count(const Handed&) { return 1; }
    [[nodiscard]] static Result<std::vector<BuiltDevice>> build(Handed handed, BuildContext& ctx);
    static void add_seccomp_rules(DeviceThreadProfiles profiles);
};

}  // namespace stockade
