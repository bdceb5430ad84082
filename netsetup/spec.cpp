#include "netsetup/spec.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>

#include "base/table.hpp"
#include "netsetup/names.hpp"

namespace stockade::net {
namespace {

constexpr std::array kKeys = {"id",     "tap", "mac",    "bridge", "vlan",     "trunk",
                              "uplink", "mtu", "queues", "filter", "isolated", "owner"};

std::string known_keys() {
    std::string out;
    for (auto k : kKeys)
        out += fmt::format("{}{}", out.empty() ? "" : ", ", k);
    return out;
}

// Strict unsigned decimal: no sign, no spaces, no hex, no overflow.
Result<std::uint64_t> parse_number(std::string_view key, std::string_view text) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
        (text.size() > 1 && text.front() == '0'))
        return fail("{}: '{}' is not a decimal number", key, text);
    return v;
}

Result<std::uint64_t> parse_in_range(std::string_view key, std::string_view text, std::uint64_t lo,
                                     std::uint64_t hi, std::string_view what) {
    auto v = STOCKADE_TRY(parse_number(key, text));
    if (v < lo || v > hi) return fail("{}: {} {} is outside {}..{}", key, what, text, lo, hi);
    return v;
}

Result<std::uint16_t> parse_vlan(std::string_view key, std::string_view text) {
    auto v = STOCKADE_TRY(parse_in_range(key, text, kMinVlan, kMaxVlan, "VLAN"));
    return static_cast<std::uint16_t>(v);
}

// "10+20+100-110": '+' separates, "a-b" is an inclusive range.
Result<std::vector<std::uint16_t>> parse_trunk(std::string_view text) {
    std::vector<std::uint16_t> vids;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto next = text.find('+', pos);
        if (next == std::string_view::npos) next = text.size();
        auto item = text.substr(pos, next - pos);
        if (item.empty()) return fail("trunk: empty VLAN in '{}'", text);
        if (auto dash = item.find('-'); dash != std::string_view::npos) {
            auto lo = STOCKADE_TRY(parse_vlan("trunk", item.substr(0, dash)));
            auto hi = STOCKADE_TRY(parse_vlan("trunk", item.substr(dash + 1)));
            if (lo > hi) return fail("trunk: range {} runs backwards", item);
            for (unsigned v = lo; v <= hi; ++v)
                vids.push_back(static_cast<std::uint16_t>(v));
        } else {
            vids.push_back(STOCKADE_TRY(parse_vlan("trunk", item)));
        }
        pos = next + 1;
    }
    std::sort(vids.begin(), vids.end());
    if (auto dup = std::adjacent_find(vids.begin(), vids.end()); dup != vids.end())
        return fail("trunk: VLAN {} is listed twice", *dup);
    return vids;
}

Result<bool> parse_bool(std::string_view key, std::string_view text) {
    if (text == "yes" || text == "on" || text == "true") return true;
    if (text == "no" || text == "off" || text == "false") return false;
    return fail("{}: '{}' is not yes or no", key, text);
}

// Each filter's name in a network spec.
constexpr NamedValue<MacFilter> kFilters[] = {
    {MacFilter::off, "off"},
    {MacFilter::source, "mac"},
    {MacFilter::strict, "strict"},
};

Result<MacFilter> parse_filter(std::string_view text) {
    auto filter = value_named(kFilters, text);
    if (!filter) return fail("filter: '{}' is not one of off, mac, strict", text);
    return *filter;
}

std::string format_trunk(const std::vector<std::uint16_t>& vids) {
    std::string out;
    for (std::size_t i = 0; i < vids.size();) {
        std::size_t j = i;
        while (j + 1 < vids.size() && vids[j + 1] == vids[j] + 1)
            ++j;
        if (!out.empty()) out += '+';
        out += j > i + 1 ? fmt::format("{}-{}", vids[i], vids[j]) : fmt::format("{}", vids[i]);
        if (j == i + 1) out += fmt::format("+{}", vids[j]);
        i = j + 1;
    }
    return out;
}

}  // namespace

std::string_view to_string(MacFilter filter) {
    return name_of(kFilters, filter);
}

std::vector<std::uint16_t> NetSpec::vlans() const {
    auto all = trunk;
    if (vlan) all.push_back(*vlan);
    std::sort(all.begin(), all.end());
    return all;
}

Result<NetSpec> parse_net_spec(std::string_view text, const SpecDefaults& defaults) {
    // Split into key=value pairs first, so every later message can name its key.
    std::map<std::string, std::string, std::less<>> fields;
    if (!text.empty()) {
        std::size_t pos = 0;
        while (pos <= text.size()) {
            auto next = text.find(',', pos);
            if (next == std::string_view::npos) next = text.size();
            auto item = text.substr(pos, next - pos);
            pos = next + 1;
            if (item.empty()) return fail("empty field in network spec '{}'", text);
            auto eq = item.find('=');
            if (eq == std::string_view::npos)
                return fail("'{}' in network spec is not key=value", item);
            auto key = item.substr(0, eq);
            auto value = item.substr(eq + 1);
            if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
                return fail("unknown key '{}' in network spec (known: {})", key, known_keys());
            if (value.empty()) return fail("{}: empty value", key);
            if (!fields.emplace(key, value).second) return fail("{}: given twice", key);
        }
    }
    auto get = [&](std::string_view key) -> std::optional<std::string> {
        auto it = fields.find(key);
        if (it == fields.end()) return std::nullopt;
        return it->second;
    };

    NetSpec spec;
    if (auto id = get("id")) {
        spec.id = *id;
    } else if (defaults.id) {
        spec.id = *defaults.id;
    } else {
        return fail("id: missing (every network spec names its sandbox: id=NAME)");
    }
    STOCKADE_TRY_VOID(validate_sandbox_id(spec.id));

    spec.tap = get("tap").value_or(derive_tap_name(spec.id));
    STOCKADE_TRY_VOID(validate_ifname("tap", spec.tap));

    if (auto mac = get("mac")) {
        auto parsed = parse_sandbox_mac(*mac);
        if (!parsed) return std::unexpected(std::move(parsed).error().context("mac"));
        spec.mac = *parsed;
    } else {
        spec.mac = derive_mac(spec.id);
    }

    if (auto bridge = get("bridge")) {
        STOCKADE_TRY_VOID(validate_ifname("bridge", *bridge));
        spec.bridge = *bridge;
    }
    if (auto uplink = get("uplink")) {
        STOCKADE_TRY_VOID(validate_ifname("uplink", *uplink));
        spec.uplink = *uplink;
    }
    if (auto vlan = get("vlan")) spec.vlan = STOCKADE_TRY(parse_vlan("vlan", *vlan));
    if (auto trunk = get("trunk")) spec.trunk = STOCKADE_TRY(parse_trunk(*trunk));
    if (auto mtu = get("mtu"))
        spec.mtu = static_cast<std::uint32_t>(
            STOCKADE_TRY(parse_in_range("mtu", *mtu, kMinMtu, kMaxTapMtu, "MTU")));
    if (auto queues = get("queues"))
        spec.queues = static_cast<unsigned>(
            STOCKADE_TRY(parse_in_range("queues", *queues, 1, kMaxQueues, "queue count")));
    if (auto filter = get("filter")) spec.filter = STOCKADE_TRY(parse_filter(*filter));
    if (auto isolated = get("isolated"))
        spec.isolated = STOCKADE_TRY(parse_bool("isolated", *isolated));
    if (auto owner = get("owner")) {
        // UID, UID:GID or :GID, numeric: no user database lookups in a privileged setup path.
        std::string_view o = *owner;
        auto colon = o.find(':');
        if (colon != 0)
            spec.owner_uid = static_cast<uid_t>(
                STOCKADE_TRY(parse_in_range("owner", o.substr(0, colon), 0, 0xfffffffe, "uid")));
        if (colon != std::string_view::npos)
            spec.owner_gid = static_cast<gid_t>(
                STOCKADE_TRY(parse_in_range("owner", o.substr(colon + 1), 0, 0xfffffffe, "gid")));
    } else {
        spec.owner_uid = defaults.owner_uid;
        spec.owner_gid = defaults.owner_gid;
    }

    // Cross-field rules.
    if (!spec.bridge) {
        for (auto key : {"vlan", "trunk", "uplink"})
            if (fields.contains(key)) return fail("{}: needs a bridge (bridge=NAME)", key);
        if (spec.isolated) return fail("isolated: needs a bridge (bridge=NAME)");
    } else {
        if (spec.vlan && std::binary_search(spec.trunk.begin(), spec.trunk.end(), *spec.vlan))
            return fail("trunk: VLAN {} is also the access VLAN (vlan={})", *spec.vlan, *spec.vlan);
        // A port with no VLAN at all passes nothing on a VLAN-filtering bridge; the
        // Linux default of VLAN 1 is what "just works" with an ordinary bridge.
        if (!spec.vlan && spec.trunk.empty()) spec.vlan = 1;
        if (*spec.bridge == spec.tap)
            return fail("bridge: '{}' is also the tap's name", *spec.bridge);
    }
    if (spec.uplink) {
        if (*spec.uplink == spec.tap)
            return fail("uplink: '{}' is also the tap's name", *spec.uplink);
        if (*spec.uplink == *spec.bridge)
            return fail("uplink: '{}' is also the bridge's name", *spec.uplink);
    }
    return spec;
}

std::string format_net_spec(const NetSpec& spec) {
    std::string out = fmt::format("id={},tap={},mac={}", spec.id, spec.tap, spec.mac.to_string());
    if (spec.bridge) out += fmt::format(",bridge={}", *spec.bridge);
    if (spec.vlan) out += fmt::format(",vlan={}", *spec.vlan);
    if (!spec.trunk.empty()) out += fmt::format(",trunk={}", format_trunk(spec.trunk));
    if (spec.uplink) out += fmt::format(",uplink={}", *spec.uplink);
    if (spec.mtu) out += fmt::format(",mtu={}", *spec.mtu);
    out += fmt::format(",queues={},filter={}", spec.queues, to_string(spec.filter));
    if (spec.bridge) out += fmt::format(",isolated={}", spec.isolated ? "yes" : "no");
    if (spec.owner_uid || spec.owner_gid) {
        out += ",owner=";
        if (spec.owner_uid) out += fmt::format("{}", *spec.owner_uid);
        if (spec.owner_gid) out += fmt::format(":{}", *spec.owner_gid);
    }
    return out;
}

}  // namespace stockade::net
