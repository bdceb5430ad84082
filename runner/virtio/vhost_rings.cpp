#include "runner/virtio/vhost_rings.hpp"

#include "runner/virtio/queue.hpp"

namespace stockade::virtio {

Result<> start_vhost_rings(vhost::VhostDevice& v, const ActivateContext& ctx,
                           std::initializer_list<std::uint16_t> queues, std::uint16_t max_size,
                           std::uint64_t ring_features) {
    if (!ctx.resume.empty())
        return fail("resuming vhost rings at a snapshot's positions is not supported yet");
    STOCKADE_TRY_VOID(v.set_features(ctx.features & (ring_features | kFeatureVersion1)));
    STOCKADE_TRY_VOID(v.set_memory(ctx.memory));
    const bool event_idx = (ctx.features & kFeatureEventIdx) != 0;
    for (std::uint16_t q : queues) {
        if (q >= ctx.queues.size() || !ctx.queues[q].enabled)
            return fail("queue {} is not enabled", q);
        const QueueSetup& s = ctx.queues[q];
        auto checked = SplitQueue::create(ctx.memory, s, event_idx, max_size);
        if (!checked)
            return std::unexpected(std::move(checked).error().context(fmt::format("queue {}", q)));
        STOCKADE_TRY_VOID(v.set_vring(ctx.memory, {q, s.size, s.desc, s.driver, s.device,
                                                   ctx.kick_fds[q], ctx.call_fds[q], event_idx}));
    }
    return {};
}

}  // namespace stockade::virtio
