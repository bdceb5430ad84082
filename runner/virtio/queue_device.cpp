#include "runner/virtio/queue_device.hpp"

#include <unistd.h>

#include <algorithm>

namespace stockade::virtio {

Result<> QueueDevice::activate(const ActivateContext& ctx) {
    std::lock_guard lock(mu_);
    queues_.clear();
    kick_fds_.clear();
    const bool event_idx = (ctx.features & kFeatureEventIdx) != 0;
    for (std::size_t q = 0; q < ctx.queues.size() && q < queue_count(); ++q) {
        if (!ctx.queues[q].enabled || !serves_queue(static_cast<std::uint16_t>(q), ctx.features)) {
            queues_.emplace_back();
            continue;
        }
        auto queue = SplitQueue::create(ctx.memory, ctx.queues[q], event_idx, queue_max_size());
        if (queue && q < ctx.resume.size())
            if (auto resumed = queue->resume_at(ctx.resume[q]); !resumed)
                queue = std::unexpected(std::move(resumed).error());
        if (!queue)
            return std::unexpected(std::move(queue).error().context(fmt::format("queue {}", q)));
        queues_.emplace_back(std::move(*queue));
    }
    memory_ = &ctx.memory;
    watcher_ = own_thread_ != nullptr ? own_thread_ : &ctx.watcher;
    notify_ = ctx.notify_queue;
    needs_reset_ = ctx.needs_reset;
    features_ = ctx.features;
    broken_ = false;
    on_activate(ctx);
    kick_fds_.assign(queues_.size(), -1);
    own_kicks_.assign(queues_.size(), 0);
    queue_counters_.assign(queues_.size(), {});
    for (std::uint16_t q = 0; q < queues_.size(); ++q) {
        if (!queues_[q]) continue;
        const int fd = ctx.kick_fds[q];
        STOCKADE_TRY_VOID(watcher_->watch(fd, [this, q] { kicked(q); }));
        kick_fds_[q] = fd;
        // Resumed: the driver's kicks from before the snapshot are gone, and with EVENT_IDX
        // it would not kick again for chains it already made available.
        if (q < ctx.resume.size()) serve_again(q);
    }
    return {};
}

void QueueDevice::reset() {
    std::vector<int> fds;
    {
        std::lock_guard lock(mu_);
        fds.swap(kick_fds_);
    }
    for (int fd : fds)
        if (fd >= 0 && watcher_ != nullptr) watcher_->unwatch(fd);
    std::lock_guard lock(mu_);
    on_reset();
    queues_.clear();
    memory_ = nullptr;
    broken_ = false;
}

Result<DeviceState> QueueDevice::save_state() {
    std::lock_guard lock(mu_);
    DeviceState s;
    s.queues.resize(queue_count());
    for (std::uint16_t q = 0; q < queues_.size() && q < s.queues.size(); ++q) {
        if (!queues_[q]) continue;
        QueuePosition p = queues_[q]->position();
        p.next_avail = static_cast<std::uint16_t>(p.next_avail - unused_chains(q));
        s.queues[q] = p;
    }
    return s;
}

void QueueDevice::hold(bool held) {
    if (own_thread_ != nullptr) own_thread_->hold(held);
}

void QueueDevice::kicked(std::uint16_t q) {
    std::lock_guard lock(mu_);
    // Read the eventfd before serving: a kick that arrives while serving is kept.
    if (q < kick_fds_.size() && kick_fds_[q] >= 0) {
        std::uint64_t count = 0;
        if (::read(kick_fds_[q], &count, sizeof count) == sizeof count) {
            const std::uint64_t own = std::min(count, own_kicks_[q]);
            own_kicks_[q] -= own;
            queue_counters_[q].kicks += count - own;
        }
    }
    run_queue(q);
}

void QueueDevice::kick(std::uint16_t q) {
    std::lock_guard lock(mu_);
    run_queue(q);
}

void QueueDevice::fail_device(std::uint16_t q, const std::string& why) {
    broken_ = true;
    on_broken();
    needs_reset_(fmt::format("queue {}: {}", q, why));
}

void QueueDevice::run_queue(std::uint16_t q) {
    if (memory_ == nullptr || broken_ || q >= queues_.size() || !queues_[q]) return;
    SplitQueue& queue = *queues_[q];
    ++queue_counters_[q].runs;
    queue.begin_turn(kServeBudget);
    auto served = serve(q, queue, *memory_);
    if (!served) return fail_device(q, served.error().message);
    if (auto notified = notify_if_needed(q, queue); !notified)
        return fail_device(q, notified.error().message);
    if (queue.turn_cut_short()) {
        ++queue_counters_[q].budget_exhausted;
        serve_again(q);
    }
}

// Chains are left after a turn: the queue's own kick eventfd brings it back on a later turn
// of the loop, after whatever else is ready (no guest kick needed; a paused loop keeps it
// for the release). `write` is in every thread's baseline filter.
void QueueDevice::serve_again(std::uint16_t q) {
    if (q >= kick_fds_.size() || kick_fds_[q] < 0) return;  // being reset
    const std::uint64_t one = 1;
    if (::write(kick_fds_[q], &one, sizeof one) == sizeof one) ++own_kicks_[q];
}

Result<> QueueDevice::notify_if_needed(std::uint16_t q, SplitQueue& queue) {
    if (!STOCKADE_TRY(queue.should_notify())) return {};
    ++queue_counters_[q].interrupts;
    notify_(q);
    return {};
}

std::vector<QueueDevice::QueueCounters> QueueDevice::queue_counters() {
    std::lock_guard lock(mu_);
    return queue_counters_;
}

std::string QueueDevice::queue_stats(std::uint16_t q) {
    const auto all = queue_counters();
    const QueueCounters c = q < all.size() ? all[q] : QueueCounters{};
    return fmt::format("kicks {}, served {}, interrupts {}, budget exhausted {}", c.kicks, c.runs,
                       c.interrupts, c.budget_exhausted);
}

}  // namespace stockade::virtio
