#include "runner/cli/firecracker_config.hpp"

#include <initializer_list>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "netsetup/mac.hpp"
#include "netsetup/names.hpp"

namespace stockade {
namespace {

using nlohmann::json;

template <typename... Args>
std::unexpected<Error> refuse(std::string_view path, fmt::format_string<Args...> f,
                              Args&&... args) {
    return fail("config file: {}: {}", path.empty() ? "/" : path,
                fmt::format(f, std::forward<Args>(args)...));
}

// The object at `path`, with every key in `known`.
Result<const json*> object_at(const json& v, const std::string& path,
                              std::initializer_list<std::string_view> known) {
    if (!v.is_object()) return refuse(path, "expected an object");
    for (const auto& [key, value] : v.items()) {
        bool found = false;
        for (std::string_view k : known)
            found |= key == k;
        if (!found) return refuse(path + "/" + key, "unknown field");
    }
    return &v;
}

const json* member(const json& o, const char* key) {
    const auto it = o.find(key);
    return it == o.end() || it->is_null() ? nullptr : &*it;
}

Result<std::string> string_at(const json& o, const std::string& path, const char* key,
                              bool required) {
    const json* v = member(o, key);
    if (v == nullptr) {
        if (required) return refuse(path + "/" + key, "missing");
        return std::string();
    }
    if (!v->is_string()) return refuse(path + "/" + key, "expected a string");
    return v->get<std::string>();
}

Result<bool> bool_at(const json& o, const std::string& path, const char* key) {
    const json* v = member(o, key);
    if (v == nullptr) return false;
    if (!v->is_boolean()) return refuse(path + "/" + key, "expected true or false");
    return v->get<bool>();
}

// A field stockade cannot honour unless it is absent or null.
Result<> only_null(const json& o, const std::string& path, const char* key, std::string_view why) {
    if (member(o, key) != nullptr) return refuse(path + "/" + key, "{}", why);
    return {};
}

Result<> boot_source(const json& v, std::vector<std::string>& args) {
    const std::string path = "/boot-source";
    STOCKADE_TRY(object_at(v, path, {"kernel_image_path", "initrd_path", "boot_args"}));
    args.insert(args.end(),
                {"--kernel", STOCKADE_TRY(string_at(v, path, "kernel_image_path", true))});
    if (auto initrd = STOCKADE_TRY(string_at(v, path, "initrd_path", false)); !initrd.empty())
        args.insert(args.end(), {"--initrd", initrd});
    if (auto boot = STOCKADE_TRY(string_at(v, path, "boot_args", false)); !boot.empty()) {
        for (std::size_t at = 0; (at = boot.find("pci=off", at)) != std::string::npos; ++at)
            if ((at == 0 || boot[at - 1] == ' ') && (at + 7 == boot.size() || boot[at + 7] == ' '))
                return refuse(path + "/boot_args",
                              "pci=off: stockade's devices sit on PCI (its own command line "
                              "already says what its machine needs)");
        args.insert(args.end(), {"--cmdline", boot});
    }
    return {};
}

Result<> machine_config(const json& v, std::vector<std::string>& args) {
    const std::string path = "/machine-config";
    STOCKADE_TRY(object_at(
        v, path,
        {"vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "huge_pages", "cpu_template"}));
    for (const char* key : {"vcpu_count", "mem_size_mib"}) {
        const json* n = member(v, key);
        if (n == nullptr) return refuse(path + "/" + key, "missing");
        if (!n->is_number_unsigned())
            return refuse(path + "/" + key, "expected a positive integer");
        args.insert(args.end(), {key == std::string_view("vcpu_count") ? "--vcpus" : "--memory",
                                 std::to_string(n->get<std::uint64_t>())});
    }
    if (STOCKADE_TRY(bool_at(v, path, "smt")))
        return refuse(path + "/smt", "simultaneous multithreading is not offered to guests");
    if (STOCKADE_TRY(bool_at(v, path, "track_dirty_pages")))
        return refuse(path + "/track_dirty_pages", "dirty page tracking is not supported yet");
    STOCKADE_TRY_VOID(only_null(v, path, "cpu_template", "CPU templates are not supported"));
    if (const auto huge = STOCKADE_TRY(string_at(v, path, "huge_pages", false)); !huge.empty()) {
        if (huge != "None" && huge != "2M")
            return refuse(path + "/huge_pages", "expected \"None\" or \"2M\", got \"{}\"", huge);
        args.insert(args.end(), {"--huge-pages", huge == "None" ? "off" : "thp"});
    }
    return {};
}

Result<> drives(const json& v, std::vector<std::string>& args) {
    if (!v.is_array()) return refuse("/drives", "expected a list");
    bool root_seen = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string path = fmt::format("/drives/{}", i);
        const json& d = v[i];
        STOCKADE_TRY(object_at(d, path,
                               {"drive_id", "path_on_host", "is_root_device", "is_read_only",
                                "partuuid", "cache_type", "io_engine", "rate_limiter", "socket"}));
        STOCKADE_TRY(string_at(d, path, "drive_id", true));
        const std::string file = STOCKADE_TRY(string_at(d, path, "path_on_host", true));
        const bool root = STOCKADE_TRY(bool_at(d, path, "is_root_device"));
        const bool ro = STOCKADE_TRY(bool_at(d, path, "is_read_only"));
        STOCKADE_TRY_VOID(only_null(d, path, "partuuid",
                                    "a root partition by PARTUUID is not supported (the root "
                                    "device is the whole disk, ext4)"));
        STOCKADE_TRY_VOID(only_null(d, path, "rate_limiter", "rate limiters are not supported"));
        STOCKADE_TRY_VOID(only_null(d, path, "socket", "vhost-user drives are not supported"));
        if (const auto c = STOCKADE_TRY(string_at(d, path, "cache_type", false));
            !c.empty() && c != "Unsafe" && c != "Writeback")
            return refuse(path + "/cache_type", "expected \"Unsafe\" or \"Writeback\", got \"{}\"",
                          c);
        if (const auto e = STOCKADE_TRY(string_at(d, path, "io_engine", false));
            !e.empty() && e != "Sync")
            return refuse(path + "/io_engine", "only \"Sync\" is supported, got \"{}\"", e);
        if (root && root_seen) return refuse(path + "/is_root_device", "a second root device");
        root_seen |= root;
        args.insert(args.end(), {root ? "--rootfs" : "--disk", ro ? file + ",ro" : file});
    }
    return {};
}

// Checked here, not only by --net, so that the message names the JSON path and no ',' in
// a value adds options to the --net spec.
Result<> network_interfaces(const json& v, std::vector<std::string>& args) {
    if (!v.is_array()) return refuse("/network-interfaces", "expected a list");
    if (v.size() > 1)
        return refuse("/network-interfaces/1", "stockade gives a sandbox one network interface");
    const std::string path = "/network-interfaces/0";
    const json& n = v[0];
    STOCKADE_TRY(object_at(
        n, path, {"iface_id", "host_dev_name", "guest_mac", "rx_rate_limiter", "tx_rate_limiter"}));
    STOCKADE_TRY(string_at(n, path, "iface_id", true));
    const std::string tap = STOCKADE_TRY(string_at(n, path, "host_dev_name", true));
    if (auto ok = net::validate_ifname(path + "/host_dev_name", tap); !ok)
        return fail("config file: {}", ok.error().message);
    if (tap.find(',') != std::string::npos)  // the kernel takes it, --net's syntax cannot
        return refuse(path + "/host_dev_name", "'{}' contains ',', which --net cannot name", tap);
    std::string spec = "tap=" + tap;
    if (const auto mac = STOCKADE_TRY(string_at(n, path, "guest_mac", false)); !mac.empty()) {
        if (auto ok = net::parse_sandbox_mac(mac); !ok)
            return refuse(path + "/guest_mac", "{}", ok.error().message);
        spec += ",mac=" + mac;
    }
    for (const char* key : {"rx_rate_limiter", "tx_rate_limiter"})
        STOCKADE_TRY_VOID(only_null(n, path, key, "rate limiters are not supported"));
    args.insert(args.end(), {"--net", spec});
    return {};
}

// Firecracker's levels onto stockade's: Trace is Debug, and stockade's errors cannot be
// turned off.
Result<> logger(const json& v, std::vector<std::string>& args) {
    const std::string path = "/logger";
    STOCKADE_TRY(
        object_at(v, path, {"log_path", "level", "show_level", "show_log_origin", "module"}));
    if (const auto file = STOCKADE_TRY(string_at(v, path, "log_path", false)); !file.empty())
        args.insert(args.end(), {"--log-path", file});
    if (const auto level = STOCKADE_TRY(string_at(v, path, "level", false)); !level.empty()) {
        std::string ours;
        if (level == "Error")
            ours = "error";
        else if (level == "Warning" || level == "Warn")
            ours = "warning";
        else if (level == "Info")
            ours = "info";
        else if (level == "Debug" || level == "Trace")
            ours = "debug";
        else
            return refuse(path + "/level",
                          "expected Error, Warning, Info, Debug or Trace, got \"{}\" (stockade's "
                          "errors cannot be turned off)",
                          level);
        args.insert(args.end(), {"--log-level", ours});
    }
    if (const json* show = member(v, "show_level");
        show != nullptr && !show->is_null() &&
        STOCKADE_TRY(bool_at(v, path, "show_level")) == false)
        return refuse(path + "/show_level", "stockade's lines always name their level");
    if (STOCKADE_TRY(bool_at(v, path, "show_log_origin")))
        return refuse(path + "/show_log_origin", "stockade's lines do not name their source line");
    return only_null(v, path, "module", "stockade has no per-module log filter");
}

Result<> entropy(const json& v, std::vector<std::string>& args) {
    STOCKADE_TRY(object_at(v, "/entropy", {"rate_limiter"}));
    STOCKADE_TRY_VOID(only_null(v, "/entropy", "rate_limiter", "rate limiters are not supported"));
    args.push_back("--rng");
    return {};
}

}  // namespace

Result<std::vector<std::string>> firecracker_config_args(std::string_view json_text) {
    const json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return refuse("", "not JSON");
    STOCKADE_TRY(
        object_at(doc, "",
                  {"boot-source", "drives", "machine-config", "network-interfaces", "vsock",
                   "entropy", "logger", "metrics", "balloon", "cpu-config", "mmds-config"}));
    std::vector<std::string> args;
    const json* boot = member(doc, "boot-source");
    if (boot == nullptr) return refuse("/boot-source", "missing");
    STOCKADE_TRY_VOID(boot_source(*boot, args));
    if (const json* m = member(doc, "machine-config")) STOCKADE_TRY_VOID(machine_config(*m, args));
    if (const json* d = member(doc, "drives")) STOCKADE_TRY_VOID(drives(*d, args));
    if (const json* e = member(doc, "entropy")) STOCKADE_TRY_VOID(entropy(*e, args));
    if (const json* n = member(doc, "network-interfaces"); n != nullptr && !n->empty())
        STOCKADE_TRY_VOID(network_interfaces(*n, args));
    if (member(doc, "vsock") != nullptr)
        return refuse("/vsock",
                      "Firecracker's hybrid vsock over a Unix socket (uds_path) is not offered: "
                      "stockade's vsock carries the workload's stdio");
    if (const json* l = member(doc, "logger")) STOCKADE_TRY_VOID(logger(*l, args));
    if (const json* m = member(doc, "metrics")) {
        STOCKADE_TRY(object_at(*m, "/metrics", {"metrics_path"}));
        args.insert(args.end(), {"--metrics-path",
                                 STOCKADE_TRY(string_at(*m, "/metrics", "metrics_path", true))});
    }
    for (const char* key : {"balloon", "cpu-config", "mmds-config"})
        STOCKADE_TRY_VOID(only_null(doc, "", key, "not supported"));
    return args;
}

}  // namespace stockade
