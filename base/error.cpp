#include "base/error.hpp"

#include <cstring>

namespace stockade {

Error sys_error(std::string_view operation, int err) {
    return Error{fmt::format("{}: {}", operation, std::strerror(err)), err};
}

}  // namespace stockade
