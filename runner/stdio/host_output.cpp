#include "runner/stdio/host_output.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "base/thread.hpp"

namespace stockade {
namespace {

using Clock = std::chrono::steady_clock;

// At most this much per write(2), so that progress shows while a slow reader reads: the
// stop tells a reader that reads from one that stalled by it.
constexpr std::size_t kWritePiece = 4096;

}  // namespace

struct HostOutput::Shared {
    explicit Shared(const HostOutputConfig& c)
        : fd(c.fd),
          capacity(c.capacity),
          stall(c.stall),
          flush_max(c.flush_max),
          ring(std::make_unique_for_overwrite<std::uint8_t[]>(c.capacity)) {}

    void run();
    // One write(2) of what starts at `head`; false once the stream is broken.
    bool write_piece(std::unique_lock<std::mutex>& lock);

    const int fd;
    const std::size_t capacity;
    const std::chrono::milliseconds stall, flush_max;
    const std::unique_ptr<std::uint8_t[]> ring;

    std::mutex mu;
    std::condition_variable wake;      // the writer: bytes to write, or the stop
    std::condition_variable progress;  // the stop: bytes written, or the writer gone
    std::size_t head = 0, size = 0;    // the bytes waiting, from ring[head], wrapping
    HostOutputCounters counters;
    bool stopping = false;   // no more bytes; the writer ends once it has written them
    bool abandoned = false;  // the stop gave up on the writer: it ends at its next chance
    bool broken = false;     // a write failed for good (EPIPE, EBADF, EIO)
    bool done = false;       // the writer has left run()
};

void HostOutput::Shared::run() {
    std::unique_lock lock(mu);
    while (!abandoned) {
        wake.wait(lock, [this] { return size > 0 || stopping; });
        if (abandoned || size == 0) break;  // stopping with nothing left
        if (!write_piece(lock)) {
            broken = true;
            counters.dropped += size;
            size = 0;
        }
        progress.notify_all();
    }
    done = true;
    progress.notify_all();
}

bool HostOutput::Shared::write_piece(std::unique_lock<std::mutex>& lock) {
    // Appenders only fill the free part of the ring, so the waiting bytes stay put while the
    // lock is released for the write.
    const std::uint8_t* from = ring.get() + head;
    const std::size_t n = std::min({size, capacity - head, kWritePiece});
    lock.unlock();
    ssize_t w = ::write(fd, from, n);
    const int err = errno;
    if (w < 0 && err == EAGAIN) {
        // Someone made the shared file description non-blocking: wait as a write would.
        pollfd p{fd, POLLOUT, 0};
        (void)::poll(&p, 1, -1);
    }
    lock.lock();
    if (abandoned) return true;  // the stop has counted these bytes as dropped
    if (w > 0) {
        const auto written = static_cast<std::size_t>(w);
        head = (head + written) % capacity;
        size -= written;
        counters.written += written;
        return true;
    }
    return w < 0 && (err == EINTR || err == EAGAIN);
}

Result<std::unique_ptr<HostOutput>> HostOutput::start(HostOutputConfig config) {
    if (config.fd < 0 || config.capacity == 0) return fail("host output: no descriptor or buffer");
    auto shared = std::make_shared<Shared>(config);
    // The thread keeps its own reference: a writer the stop leaves behind still has its buffer.
    auto writer =
        STOCKADE_TRY(start_thread(std::move(config.on_thread_start), [shared] { shared->run(); }));
    return std::unique_ptr<HostOutput>(new HostOutput(std::move(shared), std::move(writer)));
}

HostOutput::HostOutput(std::shared_ptr<Shared> shared, std::thread writer)
    : shared_(std::move(shared)), writer_(std::move(writer)) {}

HostOutput::~HostOutput() {
    stop();
}

void HostOutput::append(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) return;
    Shared& s = *shared_;
    std::lock_guard lock(s.mu);
    const std::size_t room = (s.stopping || s.broken) ? 0 : s.capacity - s.size;
    const std::size_t n = std::min(room, bytes.size());
    s.counters.dropped += bytes.size() - n;
    if (n == 0) return;
    const std::size_t tail = (s.head + s.size) % s.capacity;
    const std::size_t first = std::min(n, s.capacity - tail);
    std::memcpy(s.ring.get() + tail, bytes.data(), first);
    std::memcpy(s.ring.get(), bytes.data() + first, n - first);
    s.size += n;
    s.wake.notify_one();
}

void HostOutput::append(std::string_view text) {
    append(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

void HostOutput::stop() {
    if (!writer_.joinable()) return;
    Shared& s = *shared_;
    std::unique_lock lock(s.mu);
    s.stopping = true;
    s.wake.notify_one();
    const auto give_up = Clock::now() + s.flush_max;
    auto last_progress = Clock::now();
    std::uint64_t written = s.counters.written;
    while (!s.done) {
        s.progress.wait_until(lock, std::min(last_progress + s.stall, give_up));
        if (s.done) break;
        const auto now = Clock::now();
        if (s.counters.written != written) {
            written = s.counters.written;
            last_progress = now;
        }
        if (now >= give_up || now >= last_progress + s.stall) break;
    }
    if (s.done) {
        lock.unlock();
        writer_.join();
        return;
    }
    // Stuck in write(2) on a reader that does not read: leave it there.
    s.abandoned = true;
    s.counters.dropped += s.size;
    s.size = 0;
    lock.unlock();
    writer_.detach();
}

HostOutputCounters HostOutput::counters() const {
    std::lock_guard lock(shared_->mu);
    return shared_->counters;
}

}  // namespace stockade
