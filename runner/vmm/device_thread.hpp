#pragma once
// A device's own serving thread: an epoll loop of its own (runner/vmm/event_loop.hpp) that
// runs what the device watches (its queues' kicks), so a device whose requests block on the
// host (a disk on slow or hung storage) stalls neither the event loop (signals, the stop,
// stdin, the other devices) nor another such device. The sandbox starts one per device that
// asks for it, after the privilege drop and before the event loop's filter forbids making
// threads; the thread loads its own filter (the device-io profile) before it serves.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "base/unique_fd.hpp"
#include "runner/devices/fd_watcher.hpp"
#include "runner/vmm/event_loop.hpp"

namespace stockade {

class DeviceThread final : public ServingThread {
  public:
    // Starts the thread, which runs `on_thread_start` first (its seccomp filter); fails with
    // its error, the thread gone.
    [[nodiscard]] static Result<std::unique_ptr<DeviceThread>> start(
        std::function<Result<>()> on_thread_start);
    ~DeviceThread() override;
    DeviceThread(const DeviceThread&) = delete;
    DeviceThread& operator=(const DeviceThread&) = delete;

    [[nodiscard]] Result<> watch(int fd, std::function<void()> on_readable) override;
    void unwatch(int fd) override;
    void hold(bool held) override;
    [[nodiscard]] bool yield_requested() const override { return yield_.load(); }
    // Ends the thread once the callback that runs now returns (it is asked to yield) and
    // joins it. Idempotent.
    void stop();

    // How long hold() waits for the thread to take the hold.
    static constexpr int kHoldWaitMs = 2000;

  private:
    DeviceThread(EventLoop loop, UniqueFd wake) : loop_(std::move(loop)), wake_(std::move(wake)) {}
    void main(const std::function<Result<>()>& on_thread_start, Result<>& started);
    void woken();
    void wake();

    EventLoop loop_;
    UniqueFd wake_;  // eventfd: a hold or the stop is waiting
    std::thread thread_;
    std::atomic<bool> yield_{false}, stopping_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    bool want_held_ = false;      // under mu_: the latest hold()
    std::uint64_t requests_ = 0;  // under mu_: hold() calls made
    std::uint64_t taken_ = 0;     // under mu_: of them, taken by the thread
    int running_ = 0;             // under mu_: 0 starting, 1 serving, -1 ended
};

}  // namespace stockade
