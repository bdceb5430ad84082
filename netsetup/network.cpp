#include "netsetup/network.hpp"

#include <algorithm>

#include "base/log.hpp"
#include "netsetup/bridge_vlan.hpp"
#include "netsetup/caps.hpp"
#include "netsetup/link.hpp"
#include "netsetup/mac_filter.hpp"
#include "netsetup/names.hpp"
#include "netsetup/netlink.hpp"
#include "netsetup/tap.hpp"
#include "netsetup/undo.hpp"

namespace stockade::net {
namespace {

template <typename T>
std::unexpected<Error> with_context(Result<T>&& r, std::string_view what) {
    return std::unexpected(std::move(r).error().context(what));
}

// What up() learned about the host before changing it.
struct HostPlan {
    std::optional<LinkInfo> bridge;  // the existing bridge, when reusing one
    std::optional<LinkInfo> uplink;
};

Result<HostPlan> preflight(Netlink& nl, const NetSpec& spec) {
    HostPlan plan;
    if (auto tap = STOCKADE_TRY(find_link(nl, spec.tap)))
        return fail(
            "tap: interface '{}' already exists{}; stockade creates the sandbox's tap "
            "itself and does not take over existing interfaces",
            spec.tap, tap->kind.empty() ? "" : fmt::format(" (kind {})", tap->kind));
    if (spec.bridge) {
        plan.bridge = STOCKADE_TRY(find_link(nl, *spec.bridge));
        if (plan.bridge && !plan.bridge->is_bridge())
            return fail(
                "bridge: '{}' is already used by a non-bridge interface ({})", *spec.bridge,
                plan.bridge->kind.empty() ? "a device" : fmt::format("kind {}", plan.bridge->kind));
        if (plan.bridge && !plan.bridge->vlan_filtering.value_or(false))
            return fail(
                "bridge: the existing bridge '{}' has VLAN filtering off; stockade does not "
                "change a bridge it did not create (turn vlan_filtering on, or name a "
                "new bridge)",
                *spec.bridge);
    }
    if (spec.uplink) {
        plan.uplink = STOCKADE_TRY(find_link(nl, *spec.uplink));
        if (!plan.uplink) return fail("uplink: interface '{}' does not exist", *spec.uplink);
        if (plan.uplink->is_bridge())
            return fail("uplink: '{}' is a bridge, and a bridge cannot be a port of another bridge",
                        *spec.uplink);
        if (plan.uplink->master != 0 &&
            (!plan.bridge || plan.uplink->master != plan.bridge->ifindex)) {
            auto master = STOCKADE_TRY(find_link(nl, plan.uplink->master));
            return fail("uplink: '{}' is already a port of {}", *spec.uplink,
                        master ? master->name : fmt::format("#{}", plan.uplink->master));
        }
    }
    return plan;
}

// Undoes one created resource. Checks the host first: something already gone is fine
// (a per-run tap vanishes with its fds), and an interface is only touched when its name
// and index both still match the record.
Result<> undo_resource(Netlink& nl, const Resource& r, DownReport& report) {
    if (!r.created) return {};
    auto link = STOCKADE_TRY(find_link(nl, r.ifindex));
    bool present = link && link->name == r.link;
    auto gone = [&]() -> Result<> {
        report.removed.push_back(fmt::format("{} (already gone)", r.describe()));
        return {};
    };
    if (!present) return gone();
    switch (r.kind) {
        case ResourceKind::tap:
            STOCKADE_TRY_VOID(delete_link(nl, r.ifindex, r.link));
            break;
        case ResourceKind::port_vlan: {
            if (link->master == 0) return gone();  // released ports lose their VLANs
            auto vlans = STOCKADE_TRY(port_vlans(nl, r.ifindex));
            if (std::none_of(vlans.begin(), vlans.end(),
                             [&](const PortVlan& v) { return v.vid == r.vid; }))
                return gone();
            std::uint16_t vid = r.vid;
            STOCKADE_TRY_VOID(del_port_vlans(nl, r.ifindex, r.link, std::span(&vid, 1)));
            break;
        }
        case ResourceKind::bridge_port: {
            auto bridge = STOCKADE_TRY(find_link(nl, r.bridge));
            if (!bridge || link->master != bridge->ifindex) return gone();
            STOCKADE_TRY_VOID(set_master(nl, r.ifindex, r.link, 0, r.bridge));
            break;
        }
        case ResourceKind::link_up:
            if (!link->is_up()) return gone();
            STOCKADE_TRY_VOID(set_link_up(nl, r.ifindex, r.link, false));
            break;
        case ResourceKind::bridge: {
            // Ports that are not ours (no record hands them over) mean someone else uses
            // the bridge now: leave it rather than cut them off.
            std::vector<std::string> ports;
            for (const auto& l : STOCKADE_TRY(list_links(nl)))
                if (l.master == r.ifindex) ports.push_back(l.name);
            if (!ports.empty()) {
                report.kept.push_back(
                    fmt::format("{} (still has ports: {})", r.describe(), fmt::join(ports, ", ")));
                log::warn("keeping bridge {}: it still has ports {}", r.link,
                          fmt::join(ports, ", "));
                return {};
            }
            STOCKADE_TRY_VOID(delete_link(nl, r.ifindex, r.link));
            break;
        }
    }
    report.removed.push_back(r.describe());
    return {};
}

std::string failures_text(const std::vector<UndoStack<Resource>::Failure>& failed) {
    std::string out;
    for (const auto& f : failed)
        out +=
            fmt::format("{}{} ({})", out.empty() ? "" : "; ", f.item.describe(), f.error.message);
    return out;
}

// After an unwind that left `failed` behind: records exactly those (an incomplete state)
// so that a later `stockade net down` can retry them.
Result<> record_leftovers(const StateDir& dir, NetState& state,
                          const std::vector<UndoStack<Resource>::Failure>& failed) {
    state.complete = false;
    state.resources.clear();
    for (const auto& f : failed)
        state.resources.push_back(f.item);
    return dir.save(state);
}

// Carries out the build steps of up(), recording each, and unwinds on failure.
class Builder {
  public:
    Builder(Netlink& nl, const StateDir& dir, const NetSpec& spec, const NetOptions& options)
        : nl_(nl), dir_(dir), spec_(spec), options_(options) {
        state_.id = spec.id;
        state_.spec = format_net_spec(spec);
        state_.persistent = options.persistent;
    }

    Result<> build(const HostPlan& plan) {
        int bridge_ifindex = 0;
        if (spec_.bridge) {
            bridge_ifindex = STOCKADE_TRY(add_bridge(plan));
            if (spec_.uplink) STOCKADE_TRY_VOID(add_uplink(*plan.uplink, bridge_ifindex));
        }
        STOCKADE_TRY_VOID(add_tap(bridge_ifindex));
        state_.complete = true;
        return dir_.save(state_);
    }

    // Undoes everything recorded, newest first; returns `cause` with any undo failures added.
    Error roll_back(Error cause) {
        fds_.clear();  // a per-run tap disappears with its last fd
        DownReport ignored;
        auto failed =
            undo_.unwind([&](const Resource& r) { return undo_resource(nl_, r, ignored); });
        if (failed.empty()) {
            if (auto rm = dir_.remove(spec_.id); !rm)
                cause.message += fmt::format("; {}", rm.error().message);
            return cause;
        }
        auto saved = record_leftovers(dir_, state_, failed);
        cause.message += fmt::format(
            "; rolling back failed for: {}{}", failures_text(failed),
            saved ? fmt::format(" (recorded in {}; retry with `stockade net down {}`)",
                                dir_.file(spec_.id), spec_.id)
                  : fmt::format(" (and recording that failed: {})", saved.error().message));
        return cause;
    }

    // The result of a successful build().
    UpResult take_result() && { return UpResult{std::move(state_), std::move(fds_), false}; }

  private:
    // Every change to the host goes through here first: the fault-injection point.
    Result<> step(std::string_view what) {
        ++steps_;
        if (options_.fail_after_step && steps_ > *options_.fail_after_step)
            return fail("injected failure before step {} ({})", steps_, what);
        return {};
    }

    Result<> record(Resource r) {
        undo_.push(std::move(r));
        state_.resources = undo_.items();
        return dir_.save(state_);
    }

    Result<int> add_bridge(const HostPlan& plan) {
        const auto& name = *spec_.bridge;
        if (!plan.bridge) {
            STOCKADE_TRY_VOID(step("creating the bridge"));
            int ifindex = STOCKADE_TRY(create_bridge(nl_, name));
            STOCKADE_TRY_VOID(record({ResourceKind::bridge, name, ifindex, {}, 0, true}));
            return ifindex;
        }
        int ifindex = plan.bridge->ifindex;
        STOCKADE_TRY_VOID(record({ResourceKind::bridge, name, ifindex, {}, 0, false}));
        STOCKADE_TRY_VOID(ensure_up(*plan.bridge));
        return ifindex;
    }

    // The uplink trunks every VLAN of the sandbox: tagged, except VLAN 1, which goes
    // untagged as the native VLAN when the uplink has no native VLAN yet (the Linux
    // default, what an untagged upstream network expects).
    Result<> add_uplink(const LinkInfo& uplink, int bridge_ifindex) {
        const auto& bridge = *spec_.bridge;
        Resource port{ResourceKind::bridge_port, uplink.name, uplink.ifindex, bridge, 0, false};
        if (uplink.master != bridge_ifindex) {
            STOCKADE_TRY_VOID(step("adding the uplink to the bridge"));
            STOCKADE_TRY_VOID(set_master(nl_, uplink.ifindex, uplink.name, bridge_ifindex, bridge));
            port.created = true;
        }
        STOCKADE_TRY_VOID(record(port));

        auto current = STOCKADE_TRY(port_vlans(nl_, uplink.ifindex));
        bool has_pvid =
            std::any_of(current.begin(), current.end(), [](const PortVlan& v) { return v.pvid; });
        for (auto vid : spec_.vlans()) {
            Resource r{ResourceKind::port_vlan, uplink.name, uplink.ifindex, bridge, vid, false};
            bool present = std::any_of(current.begin(), current.end(),
                                       [&](const PortVlan& v) { return v.vid == vid; });
            if (!present) {
                STOCKADE_TRY_VOID(step(fmt::format("adding VLAN {} to the uplink", vid)));
                PortVlan v = vid == 1 && !has_pvid ? access_vlan(vid) : tagged_vlan(vid);
                STOCKADE_TRY_VOID(
                    add_port_vlans(nl_, uplink.ifindex, uplink.name, std::span(&v, 1)));
                r.created = true;
            }
            STOCKADE_TRY_VOID(record(r));
        }
        return ensure_up(uplink);
    }

    // Sets an existing interface up if it is not, recording which it was.
    Result<> ensure_up(const LinkInfo& link) {
        Resource r{ResourceKind::link_up, link.name, link.ifindex, {}, 0, false};
        if (!link.is_up()) {
            STOCKADE_TRY_VOID(step(fmt::format("setting {} up", link.name)));
            STOCKADE_TRY_VOID(set_link_up(nl_, link.ifindex, link.name, true));
            r.created = true;
        }
        return record(r);
    }

    Result<> add_tap(int bridge_ifindex) {
        const auto& name = spec_.tap;
        STOCKADE_TRY_VOID(step("creating the tap"));
        fds_ = STOCKADE_TRY(create_tap(
            TapConfig{name, spec_.queues, options_.persistent, spec_.owner_uid, spec_.owner_gid}));
        auto info = STOCKADE_TRY(find_link(nl_, name));
        if (!info) {
            // Cannot be recorded without its index; with persistence it would leak.
            return fail("tap {} is missing right after it was created", name);
        }
        int ifindex = info->ifindex;
        STOCKADE_TRY_VOID(record({ResourceKind::tap, name, ifindex, {}, 0, true}));

        STOCKADE_TRY_VOID(step("setting the tap's MAC and MTU"));
        STOCKADE_TRY_VOID(
            set_link_address(nl_, ifindex, name, host_side_mac(spec_.mac), spec_.mtu));
        STOCKADE_TRY_VOID(step("turning off the host's addresses on the tap"));
        STOCKADE_TRY_VOID(disable_host_addresses(nl_, ifindex, name));
        if (spec_.filter != MacFilter::off) {
            STOCKADE_TRY_VOID(step("installing the MAC filter"));
            STOCKADE_TRY_VOID(install_mac_filter(nl_, ifindex, name, spec_.mac, spec_.filter));
        }
        if (spec_.bridge) {
            STOCKADE_TRY_VOID(step("adding the tap to the bridge"));
            STOCKADE_TRY_VOID(set_master(nl_, ifindex, name, bridge_ifindex, *spec_.bridge));
            if (spec_.isolated) {
                STOCKADE_TRY_VOID(step("isolating the tap's bridge port"));
                STOCKADE_TRY_VOID(set_port_isolated(nl_, ifindex, name, true));
            }
            STOCKADE_TRY_VOID(step("setting the tap's VLANs"));
            STOCKADE_TRY_VOID(set_tap_vlans(ifindex));
        }
        STOCKADE_TRY_VOID(step("setting the tap up"));
        return set_link_up(nl_, ifindex, name, true);
    }

    // Exactly the spec's VLANs on the tap's port. A bridge with a default PVID (any bridge
    // stockade did not create, usually 1) gave the port that VLAN on enslaving; it goes,
    // or every sandbox would share VLAN 1 with the host's other ports.
    Result<> set_tap_vlans(int ifindex) {
        std::vector<PortVlan> want;
        if (spec_.vlan) want.push_back(access_vlan(*spec_.vlan));
        for (auto vid : spec_.trunk)
            want.push_back(tagged_vlan(vid));
        STOCKADE_TRY_VOID(add_port_vlans(nl_, ifindex, spec_.tap, want));
        std::vector<std::uint16_t> extra;
        for (const auto& v : STOCKADE_TRY(port_vlans(nl_, ifindex)))
            if (std::none_of(want.begin(), want.end(),
                             [&](const PortVlan& w) { return w.vid == v.vid; }))
                extra.push_back(v.vid);
        return del_port_vlans(nl_, ifindex, spec_.tap, extra);
    }

    NetState state_;
    std::vector<UniqueFd> fds_;
    Netlink& nl_;
    const StateDir& dir_;
    const NetSpec& spec_;
    const NetOptions& options_;
    UndoStack<Resource> undo_;
    unsigned steps_ = 0;
};

Result<UpResult> existing_up(Netlink& nl, const StateDir& dir, const NetState& existing,
                             const NetSpec& spec, const NetOptions& options) {
    auto retry = fmt::format("run `stockade net down {}` first", spec.id);
    if (!existing.complete)
        return fail("a previous up did not finish (record {}); {}", dir.file(spec.id), retry);
    if (existing.spec != format_net_spec(spec))
        return fail("already up with a different spec ({}); {}", existing.spec, retry);
    if (!existing.persistent)
        return fail("already up with a per-run tap (a running sandbox?); {}", retry);
    if (!options.persistent)
        return fail("already up with a persistent tap (stockade net up); {}", retry);
    for (const auto& r : existing.resources) {
        if (r.kind != ResourceKind::tap) continue;
        auto link = STOCKADE_TRY(find_link(nl, r.ifindex));
        if (!link || link->name != r.link)
            return fail("recorded as up, but its tap {} is gone; {}", r.link, retry);
    }
    return UpResult{existing, {}, true};
}

}  // namespace

Result<UpResult> up(const NetSpec& spec, const NetOptions& options) {
    auto doing = fmt::format("net up {}", spec.id);
    STOCKADE_TRY_VOID(require_cap_net_admin(doing));
    StateDir dir(options.state_dir);
    auto lock = dir.lock();
    if (!lock) return with_context(std::move(lock), doing);
    auto nl = Netlink::connect();
    if (!nl) return with_context(std::move(nl), doing);

    auto existing = dir.load(spec.id);
    if (!existing) return with_context(std::move(existing), doing);
    if (*existing) {
        auto r = existing_up(*nl, dir, **existing, spec, options);
        if (!r) return with_context(std::move(r), doing);
        return r;
    }

    auto plan = preflight(*nl, spec);
    if (!plan) return with_context(std::move(plan), doing);

    Builder builder(*nl, dir, spec, options);
    if (auto built = builder.build(*plan); !built)
        return std::unexpected(builder.roll_back(std::move(built).error()).context(doing));
    return std::move(builder).take_result();
}

Result<DownReport> down(std::string_view id, const NetOptions& options) {
    auto doing = fmt::format("net down {}", id);
    if (auto valid = validate_sandbox_id(id); !valid) return with_context(std::move(valid), doing);
    STOCKADE_TRY_VOID(require_cap_net_admin(doing));
    StateDir dir(options.state_dir);
    auto lock = dir.lock();
    if (!lock) return with_context(std::move(lock), doing);
    auto loaded = dir.load(id);
    if (!loaded) return with_context(std::move(loaded), doing);
    DownReport report;
    if (!*loaded) return report;
    NetState state = std::move(**loaded);
    report.was_up = true;

    auto nl = Netlink::connect();
    if (!nl) return with_context(std::move(nl), doing);
    auto all = dir.load_all();
    if (!all) return with_context(std::move(all), doing);
    std::vector<NetState> others;
    for (auto& s : *all)
        if (s.id != state.id) others.push_back(std::move(s));

    // Hand a created resource to another sandbox that recorded it as found, else undo it.
    auto undo = [&](const Resource& r) -> Result<> {
        if (!r.created) return {};
        for (auto& other : others) {
            for (auto& theirs : other.resources) {
                if (theirs.created || theirs.key() != r.key()) continue;
                theirs.created = true;
                theirs.ifindex = r.ifindex;
                STOCKADE_TRY_VOID(dir.save(other));
                report.handed_over.push_back(fmt::format("{} to {}", r.describe(), other.id));
                return {};
            }
        }
        return undo_resource(*nl, r, report);
    };
    UndoStack<Resource> stack(state.resources);
    auto failed = stack.unwind(undo);
    if (failed.empty()) {
        if (auto rm = dir.remove(id); !rm) return with_context(std::move(rm), doing);
        return report;
    }
    auto saved = record_leftovers(dir, state, failed);
    return fail("{}: could not remove {}{}", doing, failures_text(failed),
                saved ? fmt::format(" (still recorded in {})", dir.file(id))
                      : fmt::format(" (and recording that failed: {})", saved.error().message));
}

Result<std::vector<NetState>> show(const NetOptions& options, std::span<const std::string> ids) {
    StateDir dir(options.state_dir);
    if (ids.empty()) return dir.load_all();
    std::vector<NetState> states;
    for (const auto& id : ids) {
        STOCKADE_TRY_VOID(validate_sandbox_id(id));
        auto s = STOCKADE_TRY(dir.load(id));
        if (!s) return fail("net show {}: not up (no record in {})", id, dir.path());
        states.push_back(std::move(*s));
    }
    return states;
}

std::string describe(const NetState& state) {
    std::string out =
        fmt::format("{}: {}{}\n  spec: {}\n", state.id,
                    state.complete ? "up" : "INCOMPLETE (run `stockade net down`)",
                    state.persistent ? ", persistent tap" : ", per-run tap", state.spec);
    for (const auto& r : state.resources)
        out += fmt::format("  {:<8} {} (#{})\n", r.created ? "created" : "found", r.describe(),
                           r.ifindex);
    return out;
}

NetworkHandle::NetworkHandle(NetworkHandle&& other) noexcept
    : options_(std::move(other.options_)),
      state_(std::move(other.state_)),
      fds_(std::move(other.fds_)),
      open_(std::exchange(other.open_, false)) {}

NetworkHandle& NetworkHandle::operator=(NetworkHandle&& other) noexcept {
    if (this != &other) {
        if (auto r = close(); !r) log::error("{}", r.error().message);
        options_ = std::move(other.options_);
        state_ = std::move(other.state_);
        fds_ = std::move(other.fds_);
        open_ = std::exchange(other.open_, false);
    }
    return *this;
}

NetworkHandle::~NetworkHandle() {
    if (!open_) return;
    if (auto r = close(); !r) log::error("{}", r.error().message);
}

Result<NetworkHandle> NetworkHandle::open(const NetSpec& spec, NetOptions options) {
    options.persistent = false;
    auto result = STOCKADE_TRY(up(spec, options));
    NetworkHandle handle;
    handle.options_ = std::move(options);
    handle.state_ = std::move(result.state);
    handle.fds_ = std::move(result.tap_fds);
    handle.open_ = true;
    return handle;
}

Result<DownReport> NetworkHandle::close() {
    if (!open_) return DownReport{};
    open_ = false;
    fds_.clear();
    return down(state_.id, options_);
}

}  // namespace stockade::net
