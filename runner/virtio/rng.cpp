#include "runner/virtio/rng.hpp"

#include <sys/random.h>

namespace stockade::virtio {

namespace {
// A guest may offer huge buffers; each request gets at most this much entropy.
constexpr std::uint64_t kMaxPerRequest = 64 * 1024;
}  // namespace

Result<> Rng::serve(std::uint16_t, SplitQueue& queue, const GuestMemory& memory) {
    for (;;) {
        auto chain = STOCKADE_TRY(queue.pop());
        if (!chain) return {};
        ChainWriter w(memory, chain->writable);
        auto spans = STOCKADE_TRY(w.spans(kMaxPerRequest));
        std::uint32_t filled = 0;
        for (auto span : spans) {
            std::size_t done = 0;
            while (done < span.size()) {
                ssize_t n = ::getrandom(span.data() + done, span.size() - done, 0);
                if (n <= 0) {
                    if (errno == EINTR) continue;
                    break;  // no entropy to give: return what was filled
                }
                done += static_cast<std::size_t>(n);
            }
            filled += static_cast<std::uint32_t>(done);
            if (done < span.size()) break;
        }
        STOCKADE_TRY_VOID(queue.push_used(chain->head, filled));
    }
}

}  // namespace stockade::virtio
