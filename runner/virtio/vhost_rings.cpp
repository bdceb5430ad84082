#include "runner/virtio/vhost_rings.hpp"

#include <unistd.h>

#include "runner/virtio/queue.hpp"

namespace stockade::virtio {

Result<> start_vhost_rings(vhost::VhostDevice& v, const ActivateContext& ctx,
                           std::span<const std::uint16_t> queues, std::uint16_t max_size,
                           std::uint64_t ring_features, std::uint16_t first) {
    STOCKADE_TRY_VOID(v.set_features(ctx.features & (ring_features | kFeatureVersion1)));
    STOCKADE_TRY_VOID(v.set_memory(ctx.memory));
    const bool event_idx = (ctx.features & kFeatureEventIdx) != 0;
    for (std::uint16_t q : queues) {
        if (q < first || q >= ctx.queues.size() || !ctx.queues[q].enabled)
            return fail("queue {} is not enabled", q);
        const QueueSetup& s = ctx.queues[q];
        auto checked = SplitQueue::create(ctx.memory, s, event_idx, max_size);
        std::uint16_t base = 0;
        if (checked && q < ctx.resume.size()) {
            if (auto resumed = checked->resume_at(ctx.resume[q]); !resumed)
                checked = std::unexpected(std::move(resumed).error());
            base = ctx.resume[q].next_avail;
        }
        if (!checked)
            return std::unexpected(std::move(checked).error().context(fmt::format("queue {}", q)));
        STOCKADE_TRY_VOID(v.set_vring(
            ctx.memory, {static_cast<std::uint16_t>(q - first), s.size, s.desc, s.driver, s.device,
                         ctx.kick_fds[q], ctx.call_fds[q], event_idx, base}));
    }
    return {};
}

void VhostRings::started(const ActivateContext& ctx) {
    memory_ = &ctx.memory;
    setups_.assign(ctx.queues.begin(), ctx.queues.end());
    kick_fds_.assign(ctx.kick_fds.begin(), ctx.kick_fds.end());
    held_.reset();
    if (!ctx.resume.empty()) kick_vhost_rings(kick_fds_, queues_);
}

void VhostRings::stopped() {
    memory_ = nullptr;
    held_.reset();
}

void VhostRings::switched(const vhost::VhostDevice& v, bool held, Result<> switched) {
    held_.reset();
    if (memory_ == nullptr) return;
    if (!held)
        kick_vhost_rings(kick_fds_, queues_);
    else if (!switched)
        held_ = std::unexpected(std::move(switched).error());  // the worker may run on
    else
        held_ = save_vhost_rings(v, *memory_, setups_, queues_,
                                 static_cast<std::uint16_t>(setups_.size()), first_);
}

std::vector<std::uint16_t> VhostRings::used_indices() const {
    std::vector<std::uint16_t> out;
    if (memory_ == nullptr) return out;
    for (std::uint16_t q : queues_) {
        std::uint16_t used = 0;
        if (q < setups_.size() && setups_[q].enabled)
            used = memory_->read_obj<std::uint16_t>(setups_[q].device + 2).value_or(0);
        out.push_back(used);
    }
    return out;
}

Result<DeviceState> VhostRings::saved(std::uint16_t queue_count, std::string_view device) const {
    if (memory_ == nullptr) return DeviceState{std::vector<QueuePosition>(queue_count)};
    if (!held_) return fail("virtio {}: saved only while held", device);
    DeviceState s = STOCKADE_TRY(*held_);
    s.queues.resize(queue_count);
    return s;
}

void kick_vhost_rings(std::span<const int> kick_fds, std::span<const std::uint16_t> queues) {
    const std::uint64_t one = 1;
    for (std::uint16_t q : queues)
        if (q < kick_fds.size() && kick_fds[q] >= 0) (void)!::write(kick_fds[q], &one, sizeof one);
}

Result<DeviceState> save_vhost_rings(const vhost::VhostDevice& v, const GuestMemory& memory,
                                     std::span<const QueueSetup> setups,
                                     std::span<const std::uint16_t> queues,
                                     std::uint16_t queue_count, std::uint16_t first) {
    DeviceState state;
    state.queues.resize(queue_count);
    for (std::uint16_t q : queues) {
        if (q < first || q >= queue_count || q >= setups.size() || !setups[q].enabled) continue;
        const std::uint16_t next_avail =
            STOCKADE_TRY(v.vring_base(static_cast<std::uint16_t>(q - first)));
        const std::uint16_t next_used =
            STOCKADE_TRY(memory.read_obj<std::uint16_t>(setups[q].device + 2));
        // The kernel uses a chain in the same step that takes it; a difference would be a
        // chain lost for good after the restore.
        if (next_avail != next_used)
            return fail("vhost ring {}: {} chains taken but not used", q,
                        static_cast<std::uint16_t>(next_avail - next_used));
        state.queues[q] = {next_avail, next_used};
    }
    return state;
}

}  // namespace stockade::virtio
