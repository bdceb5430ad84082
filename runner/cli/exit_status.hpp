#pragma once
// The exit statuses stockade's own commands share (DESIGN.md, "Errors and exit status"):
// 1 when the request is refused (bad input, an unknown sandbox), 125 when stockade itself failed.
namespace stockade::cli {

inline constexpr int kRefused = 1;
inline constexpr int kFailed = 125;

}  // namespace stockade::cli
