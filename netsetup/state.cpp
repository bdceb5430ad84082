#include "netsetup/state.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/table.hpp"

namespace stockade::net {
namespace {

using nlohmann::json;

constexpr int kStateVersion = 1;

// Each kind's name in the state file.
constexpr NamedValue<ResourceKind> kKinds[] = {
    {ResourceKind::bridge, "bridge"},
    {ResourceKind::bridge_port, "bridge_port"},
    {ResourceKind::port_vlan, "port_vlan"},
    {ResourceKind::link_up, "link_up"},
    {ResourceKind::tap, "tap"},
};

Result<ResourceKind> kind_from_string(std::string_view s) {
    auto kind = value_named(kKinds, s);
    if (!kind) return fail("unknown resource kind '{}'", s);
    return *kind;
}

}  // namespace

std::string_view to_string(ResourceKind kind) {
    return name_of(kKinds, kind);
}

std::string Resource::key() const {
    switch (kind) {
        case ResourceKind::bridge:
            return fmt::format("bridge:{}", link);
        case ResourceKind::bridge_port:
            return fmt::format("port:{}:{}", bridge, link);
        case ResourceKind::port_vlan:
            return fmt::format("vlan:{}:{}", link, vid);
        case ResourceKind::link_up:
            return fmt::format("up:{}", link);
        case ResourceKind::tap:
            return fmt::format("tap:{}", link);
    }
    return "?";
}

std::string Resource::describe() const {
    switch (kind) {
        case ResourceKind::bridge:
            return fmt::format("bridge {}", link);
        case ResourceKind::bridge_port:
            return fmt::format("{} as a port of {}", link, bridge);
        case ResourceKind::port_vlan:
            return fmt::format("VLAN {} on {}", vid, link);
        case ResourceKind::link_up:
            return fmt::format("{} up", link);
        case ResourceKind::tap:
            return fmt::format("tap {}", link);
    }
    return "?";
}

std::string state_to_json(const NetState& state) {
    json resources = json::array();
    for (const auto& r : state.resources) {
        json j{{"kind", to_string(r.kind)},
               {"link", r.link},
               {"ifindex", r.ifindex},
               {"created", r.created}};
        if (!r.bridge.empty()) j["bridge"] = r.bridge;
        if (r.kind == ResourceKind::port_vlan) j["vid"] = r.vid;
        resources.push_back(std::move(j));
    }
    json j{{"version", kStateVersion},   {"id", state.id},
           {"spec", state.spec},         {"persistent", state.persistent},
           {"complete", state.complete}, {"resources", std::move(resources)}};
    return j.dump(2) + "\n";
}

Result<NetState> state_from_json(std::string_view text, std::string_view origin) {
    // nlohmann reports through exceptions; they stop here and become an Error.
    try {
        json j = json::parse(text);
        if (j.at("version").get<int>() != kStateVersion)
            return fail("{}: state version {} is not {}", origin, j.at("version").dump(),
                        kStateVersion);
        NetState s;
        s.id = j.at("id").get<std::string>();
        s.spec = j.at("spec").get<std::string>();
        s.persistent = j.at("persistent").get<bool>();
        s.complete = j.at("complete").get<bool>();
        for (const auto& rj : j.at("resources")) {
            Resource r;
            auto kind = kind_from_string(rj.at("kind").get<std::string>());
            if (!kind) return std::unexpected(std::move(kind).error().context(origin));
            r.kind = *kind;
            r.link = rj.at("link").get<std::string>();
            r.ifindex = rj.at("ifindex").get<int>();
            r.created = rj.at("created").get<bool>();
            if (rj.contains("bridge")) r.bridge = rj.at("bridge").get<std::string>();
            if (rj.contains("vid")) r.vid = rj.at("vid").get<std::uint16_t>();
            s.resources.push_back(std::move(r));
        }
        return s;
    } catch (const json::exception& e) {
        return fail("{}: not a valid stockade network state file: {}", origin, e.what());
    }
}

std::string StateDir::file(std::string_view id) const {
    return fmt::format("{}/{}.json", path_, id);
}

Result<UniqueFd> StateDir::lock() const {
    std::error_code ec;
    std::filesystem::create_directories(path_, ec);
    if (ec) return fail("creating state directory {}: {}", path_, ec.message());
    // Records name host interfaces: only their owner reads them.
    if (::chmod(path_.c_str(), 0700) != 0) return fail_sys(fmt::format("chmod {}", path_));
    auto lock_path = fmt::format("{}/.lock", path_);
    auto fd = STOCKADE_TRY(open_file(lock_path, O_RDWR | O_CREAT, 0600));
    while (::flock(fd.get(), LOCK_EX) != 0)
        if (errno != EINTR) return fail_sys(fmt::format("locking {}", lock_path));
    return fd;
}

Result<std::optional<NetState>> StateDir::load(std::string_view id) const {
    auto path = file(id);
    if (::access(path.c_str(), F_OK) != 0) {
        if (errno == ENOENT) return std::optional<NetState>{};
        return fail_sys(fmt::format("reading {}", path));
    }
    auto text = STOCKADE_TRY(read_text_file(path));
    auto state = STOCKADE_TRY(state_from_json(text, path));
    if (state.id != id) return fail("{}: records id '{}', not '{}'", path, state.id, id);
    return std::optional<NetState>(std::move(state));
}

Result<std::vector<NetState>> StateDir::load_all() const {
    std::vector<NetState> states;
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) return states;
    for (const auto& entry : std::filesystem::directory_iterator(path_, ec)) {
        auto name = entry.path().filename().string();
        if (name.starts_with(".") || !name.ends_with(".json")) continue;
        auto text = STOCKADE_TRY(read_text_file(entry.path().string()));
        states.push_back(STOCKADE_TRY(state_from_json(text, entry.path().string())));
    }
    if (ec) return fail("listing {}: {}", path_, ec.message());
    std::sort(states.begin(), states.end(),
              [](const NetState& a, const NetState& b) { return a.id < b.id; });
    return states;
}

Result<> StateDir::save(const NetState& state) const {
    auto path = file(state.id);
    auto tmp = fmt::format("{}/.{}.json.tmp", path_, state.id);
    STOCKADE_TRY_VOID(write_file(tmp, state_to_json(state), O_CREAT | O_TRUNC));
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        auto e = fail_sys(fmt::format("renaming {} to {}", tmp, path));
        ::unlink(tmp.c_str());
        return e;
    }
    return {};
}

Result<> StateDir::remove(std::string_view id) const {
    auto path = file(id);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return fail_sys(fmt::format("removing {}", path));
    return {};
}

}  // namespace stockade::net
