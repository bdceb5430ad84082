#include "snapshot/memory_loader.hpp"

#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

namespace stockade::snapshot {
namespace {

using memory_loader::Region;

// A chunk's plaintext placed wherever the regions hold its bytes (copied, or mapped as the
// zero page), or the sandbox gone (its memory with it).
enum class Placed { ok, gone };

struct FreeDeleter {
    void operator()(std::uint8_t* p) const { std::free(p); }
};

class Loader {
  public:
    Loader(SealedReader& reader, int uffd, std::span<const Region> regions)
        : reader_(reader), uffd_(uffd), regions_(regions), placed_(reader.chunk_count(), false) {}

    Result<> init() {
        page_ = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
        if (reader_.chunk_size() % page_ != 0)
            return fail("{}: chunks of {} bytes are not whole pages", reader_.part(),
                        reader_.chunk_size());
        buf_.reset(static_cast<std::uint8_t*>(std::aligned_alloc(page_, reader_.chunk_size())));
        if (!buf_) return fail("memory for a chunk");
        return {};
    }

    // The chunk holding host address `addr`, if a region holds it.
    [[nodiscard]] std::optional<std::uint64_t> chunk_of(std::uint64_t addr) const {
        for (const Region& r : regions_)
            if (addr >= r.host && addr - r.host < r.size)
                return (r.offset + (addr - r.host)) / reader_.chunk_size();
        return std::nullopt;
    }

    // `fault`: asked for by a fault, else placed in the background.
    Result<Placed> place(std::uint64_t index, bool fault) {
        const std::size_t length =
            STOCKADE_TRY(reader_.read_chunk(index, std::span(buf_.get(), reader_.chunk_size())));
        if (length % page_ != 0)
            return fail("{}: chunk {} is {} bytes, not whole pages", reader_.part(), index, length);
        const bool zero =
            std::all_of(buf_.get(), buf_.get() + length, [](std::uint8_t b) { return b == 0; });
        const std::uint64_t first = index * reader_.chunk_size(), last = first + length;
        for (const Region& r : regions_) {
            const std::uint64_t from = std::max(first, r.offset);
            const std::uint64_t to = std::min(last, r.offset + r.size);
            if (from >= to) continue;
            if (STOCKADE_TRY(fill(r.host + (from - r.offset), buf_.get() + (from - first),
                                  to - from, zero)) == Placed::gone)
                return Placed::gone;
        }
        placed_[index] = true;
        --left_;
        ++(fault ? counts_.faulted : counts_.background);
        if (zero) ++counts_.zero;
        return Placed::ok;
    }

    // A fault on a page of a chunk placed already: the page was there (a fault that raced
    // the placing, which woke it) or was dropped since (then it reads as zeros, as dropped
    // anonymous memory does).
    Result<Placed> refault(std::uint64_t addr) {
        const std::uint64_t page = addr & ~(page_ - 1);
        uffdio_zeropage z{{page, page_}, 0, 0};
        if (::ioctl(uffd_, UFFDIO_ZEROPAGE, &z) == 0) return Placed::ok;
        if (errno == EEXIST) {
            uffdio_range w{page, page_};
            if (::ioctl(uffd_, UFFDIO_WAKE, &w) == 0) return Placed::ok;
        }
        if (errno == ESRCH) return Placed::gone;
        return fail_sys("waking a fault on the restored memory");
    }

    [[nodiscard]] bool placed(std::uint64_t index) const { return placed_[index]; }
    [[nodiscard]] std::uint64_t next_unplaced(std::uint64_t from) const {
        while (from < placed_.size() && placed_[from])
            ++from;
        return from;
    }
    [[nodiscard]] std::uint64_t count() const { return placed_.size(); }
    [[nodiscard]] std::uint64_t left() const { return left_; }
    [[nodiscard]] const memory_loader::Done& counts() const { return counts_; }

  private:
    // [dst, dst + len) from `src`, or as the zero page.
    Result<Placed> fill(std::uint64_t dst, const std::uint8_t* src, std::uint64_t len, bool zero) {
        std::uint64_t at = 0;
        while (at < len) {
            long rc = 0, done = 0;
            if (zero) {
                uffdio_zeropage z{{dst + at, len - at}, 0, 0};
                rc = ::ioctl(uffd_, UFFDIO_ZEROPAGE, &z);
                done = z.zeropage;
            } else {
                uffdio_copy c{dst + at, reinterpret_cast<std::uint64_t>(src + at), len - at, 0, 0};
                rc = ::ioctl(uffd_, UFFDIO_COPY, &c);
                done = c.copy;
            }
            if (rc == 0) return Placed::ok;
            const int err = errno;
            if (done > 0) at += static_cast<std::uint64_t>(done);
            if (err == EAGAIN) continue;
            // Only this places pages there (a page the guest wrote after a zero mapping is in
            // a chunk placed already): one that is there would keep what is not the snapshot's.
            if (err == EEXIST)
                return fail("placing restored memory at {:#x}: a page is there already", dst + at);
            if (err == ESRCH) return Placed::gone;  // the sandbox's memory is gone
            return fail_sys(fmt::format("placing restored memory at {:#x}", dst + at), err);
        }
        return Placed::ok;
    }

    SealedReader& reader_;
    int uffd_;
    std::span<const Region> regions_;
    std::vector<bool> placed_;
    std::uint64_t page_ = 4096, left_ = placed_.size();
    memory_loader::Done counts_;
    std::unique_ptr<std::uint8_t, FreeDeleter> buf_;
};

}  // namespace

Result<LoadOutcome> serve_memory(SealedReader& reader, int uffd, std::span<const Region> regions,
                                 int peer) {
    const auto started = std::chrono::steady_clock::now();
    Loader loader(reader, uffd, regions);
    STOCKADE_TRY_VOID(loader.init());
    LoadOutcome out;
    std::uint64_t cursor = 0;  // no chunk before it is left to place in the background
    // The background waits while the guest faults: a fault waits for no background chunk,
    // and the loader takes no CPU from the vCPUs then (a guest resuming touches its working
    // set in a burst). Single lab rounds (bench/snapshot/README.md) were within the lab's
    // spread; a guest that faults all the time only delays the rest.
    constexpr auto kQuiet = std::chrono::milliseconds(100);
    auto last_fault = std::chrono::steady_clock::time_point{};
    // After a fault, the chunks that follow it come first (the guest's accesses run on: its
    // kernel's text, a file's pages), each once no fault waits.
    constexpr std::uint64_t kReadahead = 3;
    std::vector<std::uint64_t> ahead;
    while (loader.left() > 0) {
        // Faults first; then what follows the last one; once none came for kQuiet, the next
        // chunk nobody asked for.
        const auto quiet_for = std::chrono::steady_clock::now() - last_fault;
        const int wait =
            quiet_for >= kQuiet || !ahead.empty()
                ? 0
                : static_cast<int>(
                      std::chrono::ceil<std::chrono::milliseconds>(kQuiet - quiet_for).count());
        pollfd fds[2] = {{uffd, POLLIN, 0}, {peer, POLLRDHUP, 0}};
        if (::poll(fds, 2, wait) < 0) {
            if (errno == EINTR) continue;
            return fail_sys("poll");
        }
        if (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) return out;  // the sandbox is gone
        if (fds[0].revents & POLLIN) {
            uffd_msg msgs[16];
            const ssize_t n = ::read(uffd, msgs, sizeof msgs);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return fail_sys("reading the restored memory's faults");
            for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); ++i) {
                if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
                const std::uint64_t addr = msgs[i].arg.pagefault.address;
                const auto chunk = loader.chunk_of(addr);
                if (!chunk) return fail("a fault at {:#x}, outside the restored memory", addr);
                if (loader.placed(*chunk)) {
                    if (STOCKADE_TRY(loader.refault(addr)) == Placed::gone) return out;
                    continue;
                }
                if (STOCKADE_TRY(loader.place(*chunk, true)) == Placed::gone) return out;
                ahead.clear();
                for (std::uint64_t c = *chunk + 1; c <= *chunk + kReadahead && c < loader.count();
                     ++c)
                    ahead.push_back(c);
            }
            last_fault = std::chrono::steady_clock::now();
            continue;  // more faults may be waiting
        }
        if (!ahead.empty()) {
            const std::uint64_t c = ahead.front();
            ahead.erase(ahead.begin());
            if (!loader.placed(c) && STOCKADE_TRY(loader.place(c, false)) == Placed::gone)
                return out;
            continue;
        }
        if (std::chrono::steady_clock::now() - last_fault < kQuiet) continue;
        cursor = loader.next_unplaced(cursor);
        if (cursor < loader.count() && STOCKADE_TRY(loader.place(cursor, false)) == Placed::gone)
            return out;
    }
    out.complete = true;
    out.done = loader.counts();
    out.done.ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - started)
                                                 .count());
    return out;
}

}  // namespace stockade::snapshot
