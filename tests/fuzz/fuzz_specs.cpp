// libFuzzer target: the text a user or an operator hands stockade before anything starts.
// The first byte picks the parser: 0 the policy document (JSON), 1 netsetup's network spec
// (`--net` / `stockade net up`). Neither may crash, hang or throw; whatever parses must
// survive its own canonical form unchanged (parse(format(x)) == x), the round trip
// `stockade policy show` and `stockade net show` rely on.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "netsetup/spec.hpp"
#include "policy/policy.hpp"

using namespace stockade;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 2) {
        case 0: {
            auto policy = policy::parse_policy(text);
            if (!policy) return 0;
            auto again = policy::parse_policy(policy::to_json(*policy).dump());
            if (!again || !(*again == *policy)) __builtin_trap();
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
