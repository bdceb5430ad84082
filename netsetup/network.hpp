#pragma once
// The lifecycle of one sandbox's network: up, down, show; and NetworkHandle, the RAII
// owner `stockade run` keeps for the length of a run.
//
// up() checks everything it can before it changes anything (CAP_NET_ADMIN, names in use,
// the uplink, a reused bridge's VLAN filtering), then builds in this order, recording each
// step in the state file as it goes:
//   bridge (create, or reuse an existing VLAN-filtering bridge)
//   uplink: enslave, its VLANs (tagged; VLAN 1 native), up
//   tap: create (down), MAC + MTU, no host IPv6 address, MAC filter (tc), enslave, port
//        isolation, VLANs, up
// The tap is the last thing to come up, so no frame crosses it before the filter and its
// VLANs are in place. Any failure unwinds what was done, newest first.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "netsetup/spec.hpp"
#include "netsetup/state.hpp"

namespace stockade::net {

inline constexpr std::string_view kDefaultStateDir = "/run/stockade/net";

struct NetOptions {
    std::string state_dir{kDefaultStateDir};
    // true: the tap is TUNSETPERSIST and outlives this process (stockade net up);
    // false: it lives as long as its fds (stockade run, NetworkHandle).
    bool persistent = true;
    // Test hook: fail with an "injected failure" error instead of performing mutating step
    // number fail_after_step + 1 (so 0 fails before anything is changed).
    std::optional<unsigned> fail_after_step;
};

struct UpResult {
    NetState state;
    std::vector<UniqueFd> tap_fds;  // one per queue; empty when already_up
    bool already_up = false;        // an identical persistent setup was there: nothing done
};

[[nodiscard]] Result<UpResult> up(const NetSpec& spec, const NetOptions& options = {});

struct DownReport {
    bool was_up = false;
    std::vector<std::string> removed;      // what was undone
    std::vector<std::string> handed_over;  // "bridge br0 to sb1": still used by another sandbox
    std::vector<std::string> kept;         // made by us but now in use outside stockade
};

// Undoes what up() recorded for `id` (newest first) and removes the record. Nothing that
// existed before up is touched. An id with no record is not an error (was_up = false).
[[nodiscard]] Result<DownReport> down(std::string_view id, const NetOptions& options = {});

// The records of the given ids (all when ids is empty). An unknown id is an error.
[[nodiscard]] Result<std::vector<NetState>> show(const NetOptions& options,
                                                 std::span<const std::string> ids = {});

// Human-readable summary of a record, several lines.
[[nodiscard]] std::string describe(const NetState& state);

// One sandbox's network for the length of a run: up() with a per-run tap on open, close
// and down() on destruction (or close()). The process that destroys it must still hold
// CAP_NET_ADMIN; when the fds were handed on, the tap outlives the handle only until they
// are closed.
class NetworkHandle {
  public:
    [[nodiscard]] static Result<NetworkHandle> open(const NetSpec& spec, NetOptions options = {});

    NetworkHandle(NetworkHandle&& other) noexcept;
    NetworkHandle& operator=(NetworkHandle&& other) noexcept;
    NetworkHandle(const NetworkHandle&) = delete;
    NetworkHandle& operator=(const NetworkHandle&) = delete;
    ~NetworkHandle();

    [[nodiscard]] const NetState& state() const { return state_; }
    [[nodiscard]] std::span<const UniqueFd> tap_fds() const { return fds_; }
    // Hands the queue fds to the runner (for vhost-net); the handle still tears down.
    [[nodiscard]] std::vector<UniqueFd> take_tap_fds() { return std::move(fds_); }

    // Closes the fds it still holds and runs down(); idempotent.
    Result<DownReport> close();

  private:
    NetworkHandle() = default;
    NetOptions options_;
    NetState state_;
    std::vector<UniqueFd> fds_;
    bool open_ = false;
};

}  // namespace stockade::net
