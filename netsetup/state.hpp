#pragma once
// What `up` did, on disk: /run/stockade/net/<id>.json, written after every step (so a
// crash half-way still leaves a record `down` can use) and marked complete at the end.
//
// Each Resource is one thing up() found or made. `created` says which: down() undoes only
// what was created, newest first. Things that existed already are recorded too (created =
// false) so that ownership can be handed over: when sandbox A made bridge br0 and sandbox B
// reused it, A's down hands br0 to B (B's record now says created) instead of deleting a
// bridge B still uses; B's down then removes it. Every up and down holds the directory's
// lock, so records never change under a running up or down.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::net {

enum class ResourceKind {
    bridge,       // a bridge                         undo: delete (if no foreign ports remain)
    bridge_port,  // `link` enslaved to `bridge`      undo: release from the bridge
    port_vlan,    // VLAN `vid` on port `link`        undo: remove the VLAN
    link_up,      // `link` set administratively up   undo: set it down
    tap,          // the sandbox's tap                undo: delete (takes its tc filters along)
};

[[nodiscard]] std::string_view to_string(ResourceKind kind);

struct Resource {
    ResourceKind kind = ResourceKind::tap;
    std::string link;       // the interface concerned
    int ifindex = 0;        // its index: never act on a later namesake
    std::string bridge;     // bridge_port, port_vlan: the bridge
    std::uint16_t vid = 0;  // port_vlan
    bool created = true;    // false: it was there before; never undone, may be handed over

    // Identity across sandboxes, e.g. "vlan:eth0:10".
    [[nodiscard]] std::string key() const;
    // For people: "VLAN 10 on eth0".
    [[nodiscard]] std::string describe() const;
    bool operator==(const Resource&) const = default;
};

struct NetState {
    std::string id;
    std::string spec;        // canonical (format_net_spec)
    bool persistent = true;  // tap outlives the process (stockade net up) or not (stockade run)
    bool complete = false;   // up() finished
    std::vector<Resource> resources;  // in the order they were made
    bool operator==(const NetState&) const = default;
};

[[nodiscard]] std::string state_to_json(const NetState& state);
[[nodiscard]] Result<NetState> state_from_json(std::string_view text, std::string_view origin);

class StateDir {
  public:
    explicit StateDir(std::string path) : path_(std::move(path)) {}

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string file(std::string_view id) const;

    // Creates the directory (0700) if needed and takes its exclusive lock (flock on
    // .lock); the lock is held while the returned fd is open.
    [[nodiscard]] Result<UniqueFd> lock() const;

    [[nodiscard]] Result<std::optional<NetState>> load(std::string_view id) const;
    // Every record, sorted by id; none when the directory does not exist.
    [[nodiscard]] Result<std::vector<NetState>> load_all() const;
    // Atomically (write to a temporary file, rename).
    [[nodiscard]] Result<> save(const NetState& state) const;
    [[nodiscard]] Result<> remove(std::string_view id) const;

  private:
    std::string path_;
};

}  // namespace stockade::net
