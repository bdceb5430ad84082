#pragma once
// How a device asks the event loop to call it when a descriptor becomes readable
// (queue kicks, tap or socket traffic). Implemented by the runner's EventLoop; may be
// called from any thread.
#include <functional>

#include "base/error.hpp"

namespace stockade {

class FdWatcher {
  public:
    virtual ~FdWatcher() = default;
    [[nodiscard]] virtual Result<> watch(int fd, std::function<void()> on_readable) = 0;
    virtual void unwatch(int fd) = 0;
};

}  // namespace stockade
