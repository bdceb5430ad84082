// The control stream as stockade-init reads it (guest/control.hpp): messages decoded one at a
// time from the front of the bytes until one is incomplete or malformed. Whatever it accepts
// must come back unchanged through encode, in the bytes it took.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "guest/control.hpp"

namespace control = stockade::guest_control;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const char> rest(reinterpret_cast<const char*>(data), size);
    for (;;) {
        auto d = control::decode(rest);
        if (!d || !*d) return 0;
        const auto& [message, used] = **d;
        if (used == 0 || used > rest.size()) __builtin_trap();
        const std::string again = control::encode(message);
        if (again.size() != used) __builtin_trap();
        auto back = control::decode(again);
        if (!back || !*back || (*back)->used != used || !((*back)->message == message))
            __builtin_trap();
        rest = rest.subspan(used);
    }
}
