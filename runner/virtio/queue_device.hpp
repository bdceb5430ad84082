#pragma once
// A virtio device whose queues are served in userspace, on the event-loop thread or on a
// thread of its own (serve_on): the kick eventfds are watched, each kick serves its queue
// through serve() for one turn (at most kServeBudget chains), and the guest is interrupted
// when the ring's notification rules ask for it. A driver violation (any Error from serve) stops
// the device and marks it NEEDS_RESET.
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "runner/virtio/queue.hpp"
#include "runner/virtio/virtio.hpp"

namespace stockade::virtio {

// Chains one queue hands out per turn. A driver can make chains available as fast as they
// are served (re-posting one head over and over), so "serve until the ring is empty" may
// never end, and the event loop, one thread, would never again see the signalfd, the stop
// eventfd, stdin or the other queues. After this many the queue's turn ends and its own kick
// eventfd is signalled, so the loop serves it again after what else is ready. 64: what
// virtio-net's receive side moves per tap event (kRxBatch); a quarter of a 256-entry queue,
// so an honest driver's full ring takes four turns, each costing one epoll_wait.
inline constexpr std::uint32_t kServeBudget = 64;

class QueueDevice : public VirtioDevice {
  public:
    [[nodiscard]] Result<> activate(const ActivateContext& context) override;
    void reset() override;
    // Its own thread, when it asked for one: the kicks are watched there from the next
    // activation on, and a pause holds it.
    void serve_on(ServingThread& thread) override { own_thread_ = &thread; }
    void hold(bool held) override;
    // Snapshots: each running queue's position, less the chains the device took and has not
    // used (unused_chains). An activation with positions (ActivateContext::resume) goes on
    // from them and serves each resumed queue once (kicks waiting at the snapshot are gone).
    [[nodiscard]] Result<DeviceState> save_state() override;

    // Per queue since activation: the driver's notifications (kicks; an eventfd counts
    // those that came while the queue was being served), the times the queue was served, the
    // interrupts sent to the driver, and the turns that ended at kServeBudget with chains
    // left (each signals the queue's kick eventfd, which is not counted as a kick).
    struct QueueCounters {
        std::uint64_t kicks = 0, runs = 0, interrupts = 0, budget_exhausted = 0;
    };
    [[nodiscard]] std::vector<QueueCounters> queue_counters();
    // Queue q's counters as --stats shows them: "kicks K, served S, interrupts I, budget
    // exhausted B" (zeros before activation).
    [[nodiscard]] std::string queue_stats(std::uint16_t q);

  protected:
    // Serves the available chains of queue `q` for one turn: until queue.pop() reports none,
    // which it does once the turn's budget is spent (a device may end the turn sooner with
    // queue.end_turn()). Called with mu_ held.
    [[nodiscard]] virtual Result<> serve(std::uint16_t q, SplitQueue& queue,
                                         const GuestMemory& memory) = 0;
    // Called with mu_ held after activation succeeded / before queues are dropped.
    virtual void on_activate(const ActivateContext&) {}
    virtual void on_reset() {}
    // Called with mu_ held when the device has just failed (NEEDS_RESET): it serves nothing
    // until the driver resets it, so a backend descriptor it watches (level-triggered) must
    // stop waking the loop, or the loop would spin on it for as long as the guest waits.
    virtual void on_broken() {}
    // Chains of queue q the device has taken from the ring but not used yet (virtio-net's
    // receive buffers waiting for a frame); they are the last it took. Called with mu_ held.
    [[nodiscard]] virtual std::uint16_t unused_chains(std::uint16_t /*q*/) const { return 0; }
    // Whether queue q is served here once `features` are negotiated; a queue that is not
    // (one a kernel vhost worker serves) is left alone: its kicks are not watched.
    [[nodiscard]] virtual bool serves_queue(std::uint16_t /*q*/, std::uint64_t /*features*/) const {
        return true;
    }
    // Serves queue `q` now (e.g. when a backend became readable). Takes mu_.
    void kick(std::uint16_t q);
    [[nodiscard]] std::uint64_t negotiated() const { return features_; }
    // A pause or the stop waits for this turn (on a thread of the device's own): a device
    // whose chains take long ends its turn (queue.end_turn()) when this says so.
    [[nodiscard]] bool should_yield() const {
        return own_thread_ != nullptr && own_thread_->yield_requested();
    }
    // Interrupts the driver now if the ring's notification rules ask for it (called by serve
    // after each completed request, so a driver waiting for its first buffer back does not
    // wait for the whole batch). Called with mu_ held.
    [[nodiscard]] Result<> notify_if_needed(std::uint16_t q, SplitQueue& queue);

    std::mutex mu_;

  private:
    void kicked(std::uint16_t q);
    void run_queue(std::uint16_t q);
    void serve_again(std::uint16_t q);
    void fail_device(std::uint16_t q, const std::string& why);

    std::vector<std::optional<SplitQueue>> queues_;
    std::vector<int> kick_fds_;             // per queue; -1 when not enabled
    std::vector<std::uint64_t> own_kicks_;  // per queue: serve_again's, not yet read back
    std::vector<QueueCounters> queue_counters_;
    const GuestMemory* memory_ = nullptr;
    FdWatcher* watcher_ = nullptr;
    ServingThread* own_thread_ = nullptr;
    std::function<void(std::uint16_t)> notify_;
    std::function<void(std::string)> needs_reset_;
    std::uint64_t features_ = 0;
    bool broken_ = false;
};

}  // namespace stockade::virtio
