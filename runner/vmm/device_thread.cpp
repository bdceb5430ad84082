#include "runner/vmm/device_thread.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/log.hpp"

namespace stockade {

Result<std::unique_ptr<DeviceThread>> DeviceThread::start(
    std::function<Result<>()> on_thread_start) {
    auto loop = STOCKADE_TRY(EventLoop::create());
    const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return fail_sys("eventfd for a device thread");
    std::unique_ptr<DeviceThread> t(new DeviceThread(std::move(loop), UniqueFd(fd)));
    DeviceThread* self = t.get();
    STOCKADE_TRY_VOID(t->loop_.add(fd, EPOLLIN, [self](std::uint32_t) { self->woken(); }));
    Result<> started;
    t->thread_ = std::thread(
        [self, setup = std::move(on_thread_start), &started] { self->main(setup, started); });
    std::unique_lock lock(t->mu_);
    t->cv_.wait(lock, [&] { return t->running_ != 0; });
    const bool serving = t->running_ > 0;
    lock.unlock();
    if (!serving) {
        t->thread_.join();
        return std::unexpected(std::move(started).error().context("a device thread"));
    }
    return t;
}

DeviceThread::~DeviceThread() {
    stop();
}

void DeviceThread::main(const std::function<Result<>()>& on_thread_start, Result<>& started) {
    Result<> setup = on_thread_start ? on_thread_start() : Result<>{};
    const bool ok = setup.has_value();
    {
        std::lock_guard lock(mu_);
        // `started` is start()'s, which returns once running_ is set: not touched after.
        started = std::move(setup);
        running_ = ok ? 1 : -1;
    }
    cv_.notify_all();
    if (!ok) return;
    while (!stopping_.load()) {
        if (auto r = loop_.run_once(-1); !r) {
            log::error("a device thread: {}", r.error().message);
            break;
        }
    }
    std::lock_guard lock(mu_);
    running_ = -1;
    cv_.notify_all();
}

Result<> DeviceThread::watch(int fd, std::function<void()> on_readable) {
    return loop_.watch(fd, std::move(on_readable));
}

void DeviceThread::unwatch(int fd) {
    loop_.unwatch(fd);
}

void DeviceThread::wake() {
    const std::uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof one) != sizeof one)
        log::error("waking a device thread: {}", std::strerror(errno));
}

// On the thread, between callbacks: the latest hold wins.
void DeviceThread::woken() {
    std::uint64_t count = 0;
    (void)::read(wake_.get(), &count, sizeof count);
    std::unique_lock lock(mu_);
    if (taken_ == requests_) return;
    if (auto r = loop_.hold_watched(want_held_); !r)
        log::error("a device thread: {}", r.error().message);
    taken_ = requests_;
    yield_ = false;
    lock.unlock();
    cv_.notify_all();
}

void DeviceThread::hold(bool held) {
    std::unique_lock lock(mu_);
    if (running_ <= 0) return;
    want_held_ = held;
    const std::uint64_t mine = ++requests_;
    yield_ = true;
    wake();
    const bool taken = cv_.wait_for(lock, std::chrono::milliseconds(kHoldWaitMs),
                                    [&] { return taken_ >= mine || running_ < 0; });
    if (!taken)
        log::warn(
            "a device thread did not take the {} within {} ms (a request still runs); it "
            "takes it when that request ends",
            held ? "hold" : "release", kHoldWaitMs);
}

void DeviceThread::stop() {
    if (!thread_.joinable()) return;
    yield_ = true;
    stopping_ = true;
    wake();
    thread_.join();
}

}  // namespace stockade
