#pragma once
// A small epoll loop: descriptors with callbacks, run on one thread.
#include <sys/epoll.h>

#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "runner/devices/fd_watcher.hpp"

namespace stockade {

// add/remove/watch/unwatch may be called from any thread (devices start and stop on vCPU
// threads); handlers run on the thread that calls run_once().
class EventLoop : public FdWatcher {
  public:
    using Handler = std::function<void(std::uint32_t events)>;
    [[nodiscard]] static Result<EventLoop> create();
    EventLoop(EventLoop&& o) noexcept
        : ep_(std::move(o.ep_)),
          handlers_(std::move(o.handlers_)),
          watched_(std::move(o.watched_)),
          held_(o.held_) {}

    // EPERM from epoll (a regular file, /dev/null) is reported as such: such fds are
    // always ready and the caller handles them without the loop.
    [[nodiscard]] Result<> add(int fd, std::uint32_t events, Handler handler);
    void remove(int fd);
    [[nodiscard]] bool watching(int fd) const;
    [[nodiscard]] Result<> watch(int fd, std::function<void()> on_readable) override;
    void unwatch(int fd) override { remove(fd); }
    // Pause: the descriptors devices watch (kicks, a tap) are not waited on while held, so
    // no userspace queue is served; add()'s (signals, the stop eventfd) still are. On the
    // loop's own thread only.
    [[nodiscard]] Result<> hold_watched(bool held);
    // Waits up to timeout_ms (-1: forever) and dispatches what is ready.
    [[nodiscard]] Result<> run_once(int timeout_ms);

  private:
    explicit EventLoop(UniqueFd ep) : ep_(std::move(ep)) {}
    UniqueFd ep_;
    mutable std::mutex mu_;
    std::map<int, Handler> handlers_;
    std::set<int> watched_;  // added by watch(): the devices'
    bool held_ = false;
};

}  // namespace stockade
