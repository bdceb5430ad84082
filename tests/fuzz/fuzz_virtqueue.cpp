// libFuzzer target: the split virtqueue against arbitrary guest memory and queue
// parameters (layout in guest_image.hpp). create(), then rounds of guest store, pop(),
// reading and writing the chain's buffers, push_used(), should_notify(). It must never
// crash, hang, or hand out a buffer outside guest RAM.
#include <array>
#include <cstdint>
#include <cstring>

#include "base/log.hpp"
#include "runner/virtio/queue.hpp"
#include "tests/fuzz/guest_image.hpp"

using namespace stockade;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::GuestImage img;
    if (!fuzz::load(data, size, img)) return 0;
    const GuestMemory& mem = fuzz::guest_memory();
    const bool event_idx = img.flags & fuzz::kFlagEventIdx;
    // The device's own maximum also comes from the input (flag bits 2-5): 1 .. 32768.
    const auto max_size = static_cast<std::uint16_t>(1u << ((img.flags >> 2) & 15));
    auto queue = virtio::SplitQueue::create(mem, img.setup, event_idx, max_size);
    if (!queue) return 0;
    if (queue->size() != img.setup.size || queue->size() > max_size) __builtin_trap();

    static std::array<std::uint8_t, 0x4000> scratch;
    for (std::size_t i = 0; i < img.steps(); ++i) {
        img.guest_store(mem, i);
        (void)queue->has_available();
        auto popped = queue->pop();
        if (!popped) break;  // a violation: the device would stop here (NEEDS_RESET)
        if (*popped) {
            const virtio::Chain& chain = **popped;
            fuzz::check_chain(mem, chain, queue->size());
            // What a device does with it: read the request, fill the response.
            virtio::ChainReader reader(mem, chain.readable);
            const std::uint64_t readable = reader.remaining();
            if (readable != chain.readable_bytes()) __builtin_trap();
            const std::size_t want = std::min<std::uint64_t>(readable, scratch.size() / 2);
            if (!reader.read(std::span(scratch).first(want))) __builtin_trap();
            const auto in_spans = reader.spans(4096).value();
            for (auto span : in_spans)
                fuzz::check_host_span(mem, span);
            virtio::ChainWriter writer(mem, chain.writable);
            const auto out_spans = writer.spans(4096).value();
            for (auto span : out_spans)
                fuzz::check_host_span(mem, span);
            const std::size_t give = std::min<std::uint64_t>(writer.remaining(), scratch.size());
            if (!writer.write(std::span(scratch).first(give))) __builtin_trap();
            if (!queue->push_used(chain.head, static_cast<std::uint32_t>(writer.written()))) break;
        }
        if (!queue->should_notify()) break;
    }
    return 0;
}
