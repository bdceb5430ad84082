#pragma once
// The error convention of DESIGN.md: every failure names the operation, the object and
// the errno text, e.g. "KVM_SET_USER_MEMORY_REGION slot 0 (256 MiB at 0x0): Invalid argument".
// Functions at system boundaries return Result<T>; callers add context as it travels up.

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace stockade {

struct Error {
    std::string message;  // complete, human-readable
    int code = 0;         // errno when the failure came from the system, else 0

    // Prefix with the step that was being attempted: "starting vCPU 1: " + message.
    [[nodiscard]] Error context(std::string_view what) && {
        message = fmt::format("{}: {}", what, message);
        return std::move(*this);
    }
};

template <typename T = void>
using Result = std::expected<T, Error>;

// Builds an Error from errno (captured at the call) and a description of the operation.
[[nodiscard]] Error sys_error(std::string_view operation, int err = errno);

template <typename... Args>
[[nodiscard]] Error make_error(fmt::format_string<Args...> f, Args&&... args) {
    return Error{fmt::format(f, std::forward<Args>(args)...), 0};
}

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail(fmt::format_string<Args...> f, Args&&... args) {
    return std::unexpected(Error{fmt::format(f, std::forward<Args>(args)...), 0});
}

[[nodiscard]] inline std::unexpected<Error> fail_sys(std::string_view operation, int err = errno) {
    return std::unexpected(sys_error(operation, err));
}

}  // namespace stockade

// Propagates the error of a Result-returning expression, else yields its value.
// (GNU statement expression: g++ and clang both support it; it keeps call sites flat.)
#define STOCKADE_TRY(expr)                                              \
    ({                                                                  \
        auto&& stockade_try_r_ = (expr);                                \
        if (!stockade_try_r_) [[unlikely]]                              \
            return std::unexpected(std::move(stockade_try_r_).error()); \
        std::move(stockade_try_r_).value();                             \
    })

// Same, for Result<void>.
#define STOCKADE_TRY_VOID(expr)                                         \
    do {                                                                \
        auto&& stockade_try_r_ = (expr);                                \
        if (!stockade_try_r_) [[unlikely]]                              \
            return std::unexpected(std::move(stockade_try_r_).error()); \
    } while (0)
