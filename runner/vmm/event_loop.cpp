#include "runner/vmm/event_loop.hpp"

#include <cerrno>

namespace stockade {

Result<EventLoop> EventLoop::create() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) return fail_sys("epoll_create1");
    return EventLoop(UniqueFd(fd));
}

Result<> EventLoop::add(int fd, std::uint32_t events, Handler handler) {
    std::lock_guard lock(mu_);
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
        return fail_sys(fmt::format("epoll_ctl add fd {}", fd));
    handlers_[fd] = std::move(handler);
    return {};
}

void EventLoop::remove(int fd) {
    std::lock_guard lock(mu_);
    watched_.erase(fd);
    if (handlers_.erase(fd) != 0) ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

bool EventLoop::watching(int fd) const {
    std::lock_guard lock(mu_);
    return handlers_.contains(fd);
}

Result<> EventLoop::watch(int fd, std::function<void()> on_readable) {
    bool held = false;
    {
        std::lock_guard lock(mu_);
        held = held_;
    }
    STOCKADE_TRY_VOID(add(fd, held ? 0u : std::uint32_t{EPOLLIN},
                          [cb = std::move(on_readable)](std::uint32_t) { cb(); }));
    std::lock_guard lock(mu_);
    watched_.insert(fd);
    return {};
}

Result<> EventLoop::hold_watched(bool held) {
    std::lock_guard lock(mu_);
    held_ = held;
    for (int fd : watched_) {
        epoll_event ev{};
        ev.events = held ? 0u : std::uint32_t{EPOLLIN};
        ev.data.fd = fd;
        if (::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev) != 0)
            return fail_sys(fmt::format("epoll_ctl mod fd {}", fd));
    }
    return {};
}

Result<> EventLoop::run_once(int timeout_ms) {
    epoll_event events[16];
    int n = ::epoll_wait(ep_.get(), events, 16, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return {};
        return fail_sys("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
        Handler h;
        {
            std::lock_guard lock(mu_);
            auto it = handlers_.find(events[i].data.fd);
            if (it == handlers_.end()) continue;  // removed meanwhile
            // Held after this wait returned: a device's event waits for the release.
            if (held_ && watched_.contains(events[i].data.fd)) continue;
            h = it->second;  // a handler may remove itself
        }
        h(events[i].events);
    }
    return {};
}

}  // namespace stockade
