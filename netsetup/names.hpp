#pragma once
// Names that end up in the kernel or on disk: interface names and sandbox ids.
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "base/sandbox_id.hpp"

namespace stockade::net {

// The kernel's limit: IFNAMSIZ (16) including the terminating NUL.
inline constexpr std::size_t kMaxIfnameLength = 15;

// Accepts what the kernel's dev_valid_name() accepts, minus '%' (TUNSETIFF and
// RTM_NEWLINK expand "%d" into a free number, so "tap%d" would name some other device):
// 1..15 bytes, printable ASCII, no '/', ':', whitespace or '%', and not "." or "..".
// The message names the offending `field`.
[[nodiscard]] Result<> validate_ifname(std::string_view field, std::string_view name);

// A sandbox id becomes a file name (/run/stockade/net/<id>.json) and part of a tap name.
// The rule is base/sandbox_id.hpp's (the runner's too); the message starts with "id: ",
// the spec field.
using stockade::kMaxSandboxIdLength;
[[nodiscard]] Result<> validate_sandbox_id(std::string_view id);

// The tap of a sandbox that was given none: "stk-" + id when that fits in 15 bytes
// (ids of up to 11 bytes), else "stk-" + the first 11 hex digits of SHA-256("stockade-tap:" + id).
// Stable, so `stockade net down` finds what `up` made from the same spec.
[[nodiscard]] std::string derive_tap_name(std::string_view sandbox_id);

}  // namespace stockade::net
