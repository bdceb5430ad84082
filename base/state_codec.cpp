#include "base/state_codec.hpp"

namespace stockade {

bool StateReader::take(std::string_view what, std::size_t n) {
    if (!ok()) return false;
    if (n > in_.size() - at_) {
        error(what, "{} bytes wanted, {} left", n, in_.size() - at_);
        return false;
    }
    at_ += n;
    return true;
}

std::uint8_t StateReader::u8(std::string_view what) {
    return get<std::uint8_t>(what);
}

bool StateReader::boolean(std::string_view what) {
    const std::uint8_t v = u8(what);
    if (v > 1) error(what, "{} is not a boolean", v);
    return v == 1;
}

std::size_t StateReader::count(std::string_view what, std::size_t max,
                               std::size_t min_element_bytes) {
    const std::uint32_t n = u32(what);
    if (!ok()) return 0;
    if (n > max) {
        error(what, "{} elements, at most {}", n, max);
        return 0;
    }
    if (min_element_bytes != 0 && n > remaining() / min_element_bytes) {
        error(what, "{} elements cannot fit in the {} bytes left", n, remaining());
        return 0;
    }
    return n;
}

std::span<const std::uint8_t> StateReader::bytes(std::string_view what, std::size_t max) {
    const std::size_t n = count(what, max, 1);
    if (!take(what, n)) return {};
    return in_.subspan(at_ - n, n);
}

Result<> StateReader::finish(std::string_view what) const {
    if (!ok()) return fail("{}: {}", what, error_);
    if (at_ != in_.size()) return fail("{}: {} bytes left over", what, in_.size() - at_);
    return {};
}

}  // namespace stockade
