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

// A thread of one device's own (runner/vmm/device_thread.hpp), for a device whose requests
// may block on the host (a disk on slow storage): what it watches is served there, so the
// event loop never waits for it.
class ServingThread : public FdWatcher {
  public:
    // Held: nothing watched is served until released. Returns once the thread has taken it
    // (no callback is running then), or after a bounded wait, logged; either way the latest
    // request is the one that holds. From any thread but this one.
    virtual void hold(bool held) = 0;
    // A hold or a stop is waiting for the callback that runs now to return: a device serving
    // a long turn ends it early (its queue's own kick brings it back).
    [[nodiscard]] virtual bool yield_requested() const = 0;
};

}  // namespace stockade
