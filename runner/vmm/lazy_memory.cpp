#include "runner/vmm/lazy_memory.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
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

UniqueFd make_userfaultfd() {
    return UniqueFd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
}

// One line from `fd` (a blocking socket), without its newline; "" at its end.
Result<std::string> read_line(int fd, std::string& pending) {
    for (;;) {
        if (const auto nl = pending.find('\n'); nl != std::string::npos) {
            std::string line = pending.substr(0, nl);
            pending.erase(0, nl + 1);
            return line;
        }
        if (pending.size() > memory_loader::kMaxLine)
            return fail("the memory loader: a line longer than {} bytes", memory_loader::kMaxLine);
        char buf[256];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_sys("reading from the memory loader");
        if (n == 0) return std::string();
        pending.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

bool userfaultfd_available() {
    const UniqueFd probe = make_userfaultfd();
    if (!probe) return false;
    uffdio_api api{UFFD_API, 0, 0};
    return ::ioctl(probe.get(), UFFDIO_API, &api) == 0 &&
           (api.ioctls & (1ULL << _UFFDIO_REGISTER)) != 0;
}

Result<std::unique_ptr<LazyMemory>> LazyMemory::attach(const GuestMemory& memory, UniqueFd loader,
                                                       std::chrono::milliseconds limit) {
    std::unique_ptr<LazyMemory> lazy(new LazyMemory());
    lazy->loader_ = std::move(loader);
    lazy->uffd_ = make_userfaultfd();
    if (!lazy->uffd_) return fail_sys("userfaultfd for the restored memory");
    uffdio_api api{UFFD_API, 0, 0};
    if (::ioctl(lazy->uffd_.get(), UFFDIO_API, &api) != 0) return fail_sys("UFFDIO_API");
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
    // The layout and the descriptor, in one message.
    std::vector<std::uint8_t> bytes = memory_loader::encode_layout(regions);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{bytes.data(), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int fd = lazy->uffd_.get();
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t sent = 0;
    while ((sent = ::sendmsg(lazy->loader_.get(), &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    if (sent != static_cast<ssize_t>(bytes.size()))
        return fail_sys("sending the memory layout to the memory loader");
    // Its answer, within the limit: the loader has the key and the part's header by then.
    pollfd p{lazy->loader_.get(), POLLIN, 0};
    int ready = 0;
    while ((ready = ::poll(&p, 1, static_cast<int>(limit.count()))) < 0 && errno == EINTR) {
    }
    if (ready == 0) return fail("the memory loader did not answer within {} ms", limit.count());
    std::string pending;
    const std::string line = STOCKADE_TRY(read_line(lazy->loader_.get(), pending));
    if (line.empty()) return fail("the memory loader ended before it was ready");
    auto said = memory_loader::parse_line(line);
    if (!said) return std::unexpected(std::move(said).error().context("the snapshot's memory"));
    if (!said->ready) return fail("the memory loader said it was done before it began");
    if (!pending.empty()) return fail("the memory loader said more than it was ready");
    return lazy;
}

LazyMemory::~LazyMemory() = default;

Result<> LazyMemory::watch(std::function<Result<>()> filter) {
    // Detached: it either ends with the load or ends the process; a sandbox that ends first
    // takes it along.
    std::thread([this, filter = std::move(filter)] { run_watch(filter); }).detach();
    return {};
}

void LazyMemory::run_watch(const std::function<Result<>()>& filter) {
    std::string reason;
    if (auto f = filter(); !f) {
        reason = "seccomp: " + f.error().message;
    } else {
        std::string pending;
        auto line = read_line(loader_.get(), pending);
        if (!line) {
            reason = line.error().message;
        } else if (line->empty()) {
            reason = "the memory loader ended before the memory was in place";
        } else if (auto said = memory_loader::parse_line(*line); !said) {
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
