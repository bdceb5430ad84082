// libFuzzer target: the text a user or an operator hands stockade before anything starts.
// The first byte picks the parser: 0 the policy document (JSON), 1 netsetup's network spec
// (`stockade net up`), 2 `stockade run --net` (the runner's keys split from netsetup's), 3 a
// snapshot's manifest (`stockade snapshot restore` and `verify` read it as root), 4 an OCI
// bundle's config.json (`stockade create --bundle`, as root: what it accepts must become
// sandbox arguments that end with its command, and a process file stockade-init reads back
// unchanged). None
// may crash, hang or throw; whatever parses must survive its own canonical form unchanged
// (parse(format(x)) == x), the round trip `stockade policy show` and `stockade net show` rely on;
// what `--net` accepts hands netsetup a spec it accepts, and that spec alone parses to the same
// split.
#include <algorithm>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "guest/job.hpp"
#include "netsetup/spec.hpp"
#include "policy/policy.hpp"
#include "runner/oci/bundle.hpp"
#include "runner/registry/net_spec.hpp"
#include "runner/supervisor/snapshot_files.hpp"

using namespace stockade;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 5) {
        case 4: {
            auto c = oci::parse_config(text, "/bundle");
            if (!c) return 0;
            const auto args = oci::create_args(*c, "c", "/image");
            const auto& cmd = c->process.args;
            if (args.size() < cmd.size() + 1 || args[args.size() - cmd.size() - 1] != "--" ||
                !std::equal(cmd.begin(), cmd.end(), args.end() - static_cast<long>(cmd.size())))
                __builtin_trap();
            const Job job{{"x"}, {}, "/", "h", {}, {}, {}, false, c->process.settings};
            auto again = parse_job_files(job_files(job));
            if (!again || !(again->process == job.process)) __builtin_trap();
            return 0;
        }
        case 3: {
            auto m = manifest_from_json(text, "manifest");
            if (!m) return 0;
            auto again = manifest_from_json(manifest_to_json(*m), "manifest");
            if (!again || !(*again == *m)) __builtin_trap();
            return 0;
        }
        case 0: {
            auto policy = policy::parse_policy(text);
            if (!policy) return 0;
            auto again = policy::parse_policy(policy::to_json(*policy).dump());
            if (!again || !(*again == *policy)) __builtin_trap();
            return 0;
        }
        case 2: {
            auto spec = parse_net_device_spec(text);
            if (!spec) return 0;
            net::SpecDefaults defaults;
            defaults.id = "sandbox";
            if (!net::parse_net_spec(spec->netsetup, defaults)) __builtin_trap();
            auto again = parse_net_device_spec(spec->netsetup);
            if (!again || again->netsetup != spec->netsetup ||
                again->existing_tap != spec->existing_tap)
                __builtin_trap();
            return 0;
        }
        default: {
            auto spec = net::parse_net_spec(text);
            if (!spec) return 0;
            auto again = net::parse_net_spec(net::format_net_spec(*spec));
            if (!again || !(*again == *spec)) __builtin_trap();
            return 0;
        }
    }
}
