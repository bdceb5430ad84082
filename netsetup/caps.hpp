#pragma once
// The one privilege netsetup needs, checked before anything is touched, so the user
// gets "needs CAP_NET_ADMIN" instead of a half-made setup and an EPERM from step 3.
#include <string_view>

#include "base/error.hpp"

namespace stockade::net {

// Whether the calling thread's effective set holds CAP_NET_ADMIN.
[[nodiscard]] Result<bool> has_cap_net_admin();

// Fails with "<doing>: needs CAP_NET_ADMIN (...)" when the capability is missing.
[[nodiscard]] Result<> require_cap_net_admin(std::string_view doing);

}  // namespace stockade::net
