#include "runner/vmm/lazy_memory.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/io.hpp"
#include "base/log.hpp"

namespace stockade {
namespace {

// A userfaultfd past its API handshake, which can register memory for missing pages.
Result<UniqueFd> make_userfaultfd() {
    UniqueFd fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
    if (!fd) return fail_sys("userfaultfd for the restored memory");
    uffdio_api api{UFFD_API, 0, 0};
    if (::ioctl(fd.get(), UFFDIO_API, &api) != 0) return fail_sys("UFFDIO_API");
    if ((api.ioctls & (1ULL << _UFFDIO_REGISTER)) == 0)
        return fail("the userfaultfd cannot register memory");
    return fd;
}

// One line from `fd` (a socket), without its newline; "" at its end, nullopt when `stop`
// (an eventfd, when >= 0) was signalled first.
Result<std::optional<std::string>> read_line(int fd, std::string& pending, int stop = -1) {
    for (;;) {
        if (const auto nl = pending.find('\n'); nl != std::string::npos) {
            std::string line = pending.substr(0, nl);
            pending.erase(0, nl + 1);
            return line;
        }
        if (pending.size() > memory_loader::kMaxLine)
            return fail("the memory loader: a line longer than {} bytes", memory_loader::kMaxLine);
        if (stop >= 0) {
            pollfd p[2] = {{fd, POLLIN, 0}, {stop, POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return fail_sys("poll");
            }
            if (p[1].revents & POLLIN) return std::nullopt;
        }
        char buf[256];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_sys("reading from the memory loader");
        if (n == 0) return std::string();
        pending.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

bool lazy_sealed_restore_possible(bool user_namespace) {
    bool allowed = ::geteuid() == 0 && !user_namespace;
    if (!allowed) {
        const UniqueFd sysctl(
            ::open("/proc/sys/vm/unprivileged_userfaultfd", O_RDONLY | O_CLOEXEC));
        char c = 0;
        allowed = sysctl && ::read(sysctl.get(), &c, 1) == 1 && c == '1';
    }
    return allowed && make_userfaultfd().has_value();
}

Result<std::unique_ptr<LazyMemory>> LazyMemory::attach(const GuestMemory& memory, UniqueFd loader,
                                                       std::chrono::milliseconds limit) {
    std::unique_ptr<LazyMemory> lazy(new LazyMemory());
    lazy->loader_ = std::move(loader);
    lazy->uffd_ = STOCKADE_TRY(make_userfaultfd());
    std::vector<memory_loader::Region> regions;
    std::uint64_t offset = 0;
    for (const auto& r : memory.host_regions()) {
        const auto host = reinterpret_cast<std::uint64_t>(r.host);
        uffdio_register reg{{host, r.size}, UFFDIO_REGISTER_MODE_MISSING, 0};
        if (::ioctl(lazy->uffd_.get(), UFFDIO_REGISTER, &reg) != 0)
            return fail_sys("registering guest RAM with the userfaultfd");
        if ((reg.ioctls & (1ULL << _UFFDIO_COPY)) == 0 ||
            (reg.ioctls & (1ULL << _UFFDIO_ZEROPAGE)) == 0)
            return fail("the userfaultfd cannot copy into guest RAM");
        regions.push_back({host, r.size, offset});
        offset += r.size;
    }
    // The layout and the descriptor, in one message. A loader that failed before it took
    // them said why first.
    if (auto sent = memory_loader::send_layout(lazy->loader_.get(), regions, lazy->uffd_.get());
        !sent) {
        pollfd gone{lazy->loader_.get(), POLLIN, 0};
        if (::poll(&gone, 1, 1000) != 1) return std::unexpected(std::move(sent).error());
        const auto said = read_line(lazy->loader_.get(), lazy->pending_);
        if (said && *said && !(*said)->empty())
            if (auto p = memory_loader::parse_line(**said); !p)
                return std::unexpected(std::move(p).error().context("the snapshot's memory"));
        return std::unexpected(std::move(sent).error());
    }
    // Its answer, within the limit: the loader has the key and the part's header by then.
    pollfd p{lazy->loader_.get(), POLLIN, 0};
    int ready = 0;
    while ((ready = ::poll(&p, 1, static_cast<int>(limit.count()))) < 0 && errno == EINTR) {
    }
    if (ready == 0) return fail("the memory loader did not answer within {} ms", limit.count());
    // Whatever it says after "ready" (even "done" or an error, for a small part) is kept for
    // the watch.
    const auto line = STOCKADE_TRY(read_line(lazy->loader_.get(), lazy->pending_));
    if (!line || line->empty()) return fail("the memory loader ended before it was ready");
    auto said = memory_loader::parse_line(*line);
    if (!said) return std::unexpected(std::move(said).error().context("the snapshot's memory"));
    if (!said->ready) return fail("the memory loader said it was done before it began");
    lazy->stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    if (!lazy->stop_) return fail_sys("eventfd");
    return lazy;
}

LazyMemory::~LazyMemory() {
    if (watch_.joinable()) {
        const std::uint64_t one = 1;
        (void)!::write(stop_.get(), &one, sizeof one);
        watch_.join();
    }
    // Then the loader goes (its socket's end): it stops placing chunks before guest RAM is
    // unmapped, which the machine does after this.
}

Result<> LazyMemory::watch(std::function<Result<>()> filter) {
    watch_ = std::thread([this, filter = std::move(filter)] { run_watch(filter); });
    return {};
}

void LazyMemory::run_watch(const std::function<Result<>()>& filter) {
    std::string reason;
    if (auto f = filter(); !f) {
        reason = "seccomp: " + f.error().message;
    } else {
        auto line = read_line(loader_.get(), pending_, stop_.get());
        if (line && !*line) return;  // the sandbox is ending: its own status stands
        if (!line) {
            reason = line.error().message;
        } else if ((*line)->empty()) {
            reason = "the memory loader ended before the memory was in place";
        } else if (auto said = memory_loader::parse_line(**line); !said) {
            reason = said.error().message;
        } else if (said->ready) {
            reason = "the memory loader said it was ready twice";
        } else {
            done_ = said->done;
            complete_ = true;
            uffd_.reset();  // every page is in place: nothing is registered any more
            loader_.reset();
            return;
        }
    }
    // The guest must not run on without its memory: nothing of this process goes on.
    log::error("the snapshot's memory: {}; the sandbox stops", reason);
    ::_exit(125);
}

std::optional<memory_loader::Done> LazyMemory::completed() const {
    if (!complete_) return std::nullopt;
    return done_;
}

}  // namespace stockade
