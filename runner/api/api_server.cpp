#include "runner/api/api_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <vector>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/thread.hpp"
#include "runner/api/exec_stream.hpp"
#include "runner/api/http_connection.hpp"

namespace stockade::api {
namespace {

using Clock = std::chrono::steady_clock;

// Descriptors a client may send with its requests (SCM_RIGHTS) before one takes them: a
// snapshot's parts (state, memory, 16 disks).
constexpr std::size_t kMaxReceivedFds = 18;

struct Client {
    UniqueFd fd;
    HttpConnection http;
    std::vector<UniqueFd> received;  // sent with the requests so far, not yet taken
    std::string out;                 // response bytes not written yet
    bool close_after_write = false;
    Clock::time_point deadline;
};

}  // namespace

struct ApiServer::State {
    ApiServerConfig config;
    int wake = -1;
    std::vector<Client> clients;

    void accept_clients() {
        for (;;) {
            const int fd =
                ::accept4(config.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;  // EAGAIN: no more; anything else: try again on the next poll
            UniqueFd owned(fd);
            if (clients.size() >= kMaxClients) {
                const std::string busy = serialize(
                    fault(503, fmt::format("too many API connections (at most {})", kMaxClients)),
                    false);
                (void)!::write(fd, busy.data(), busy.size());
                continue;
            }
            clients.push_back({std::move(owned),
                               HttpConnection(),
                               {},
                               "",
                               false,
                               Clock::now() + config.idle_timeout});
        }
    }

    // Reads what the client sent and answers every complete request; false: close it now.
    bool serve(Client& c) {
        char buf[4096];
        const ssize_t n = receive(c, buf, sizeof buf);
        if (n == 0) return false;
        if (n < 0) {
            if (errno != EMSGSIZE) return errno == EAGAIN || errno == EINTR;
            c.out += serialize(
                fault(400, fmt::format("at most {} descriptors with a request", kMaxReceivedFds)),
                false);
            c.close_after_write = true;
            return true;
        }
        c.deadline = Clock::now() + config.idle_timeout;
        std::span<const char> bytes(buf, static_cast<std::size_t>(n));
        for (;;) {
            auto outcome = c.http.feed(bytes);
            bytes = {};
            if (outcome.error) {
                c.out += serialize(*outcome.error, false);
                c.close_after_write = true;
                return true;
            }
            if (!outcome.request) return true;
            Handled h = handle(*outcome.request, *config.controller);
            if (h.snapshot) {
                auto parts = std::move(c.received);
                c.received.clear();
                auto done = config.controller->snapshot(h.snapshot->leave_paused, std::move(parts));
                c.out += serialize(
                    done ? Response{200, to_json_text(*done)} : fault(400, done.error().message),
                    outcome.request->keep_alive);
                if (!outcome.request->keep_alive) {
                    c.close_after_write = true;
                    return true;
                }
                if (c.http.pending() == 0) return true;
                continue;
            }
            if (h.exec) {
                // The connection becomes the exec's, after whatever was answered before.
                auto taken = config.controller->exec(
                    std::move(*h.exec), c.fd, c.out + exec_response_head(), c.http.take_pending());
                if (taken) return false;  // handed over: dropped here without closing it
                // What the client sent after the request was meant as stdin: not HTTP.
                // EAGAIN: the guest's init is not connected yet; worth asking again.
                const int status = taken.error().code == EAGAIN ? 503 : 400;
                c.out += serialize(fault(status, taken.error().message), false);
                c.close_after_write = true;
                return true;
            }
            // Descriptors belong to the request that takes them, and to no later one.
            c.received.clear();
            const Response& r = h.response;
            c.out += serialize(r, outcome.request->keep_alive);
            if (!outcome.request->keep_alive) {
                c.close_after_write = true;
                return true;
            }
            if (c.http.pending() == 0) return true;
        }
    }

    // read(), and the descriptors that came with the bytes (kept for the request that takes
    // them; more than kMaxReceivedFds in all, or any cut short, fail with EMSGSIZE).
    static ssize_t receive(Client& c, char* buf, std::size_t size) {
        iovec iov{buf, size};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxReceivedFds)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(c.fd.get(), &msg, MSG_CMSG_CLOEXEC);
        if (n < 0) return n;
        for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
            const std::size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
                c.received.emplace_back(fd);
            }
        }
        if ((msg.msg_flags & MSG_CTRUNC) != 0 || c.received.size() > kMaxReceivedFds) {
            c.received.clear();
            errno = EMSGSIZE;
            return -1;
        }
        return n;
    }

    // Writes what it can; false: close it now (done, or the client went away).
    static bool flush(Client& c) {
        while (!c.out.empty()) {
            const ssize_t n = ::write(c.fd.get(), c.out.data(), c.out.size());
            if (n < 0) return errno == EAGAIN || errno == EINTR;
            c.out.erase(0, static_cast<std::size_t>(n));
        }
        return !c.close_after_write;
    }

    void run() {
        std::vector<pollfd> fds;
        for (;;) {
            fds.clear();
            fds.push_back({wake, POLLIN, 0});
            fds.push_back({config.listener.get(), POLLIN, 0});
            auto next = Clock::time_point::max();
            for (const Client& c : clients) {
                fds.push_back(
                    {c.fd.get(), static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
                next = std::min(next, c.deadline);
            }
            int timeout = -1;
            if (next != Clock::time_point::max())
                timeout = static_cast<int>(std::max<std::int64_t>(
                    0, std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now())
                               .count() +
                           1));
            if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
                log::warn("control API: poll: {}", std::strerror(errno));
                return;
            }
            if (fds[0].revents & POLLIN) return;
            // Clients first (their slots in fds match), then new ones.
            const auto now = Clock::now();
            std::vector<Client> kept;
            for (std::size_t i = 0; i < clients.size(); ++i) {
                Client& c = clients[i];
                const short ev = fds[i + 2].revents;
                bool keep = true;
                if (ev & (POLLERR | POLLNVAL))
                    keep = false;
                else if (ev & POLLOUT)
                    keep = flush(c);
                else if (ev & (POLLIN | POLLHUP))
                    keep = serve(c) && flush(c);
                else if (now >= c.deadline)
                    keep = false;  // connected and never sent a request
                if (keep) kept.push_back(std::move(c));
            }
            clients = std::move(kept);
            if (fds[1].revents & POLLIN) accept_clients();
        }
    }
};

Result<std::unique_ptr<ApiServer>> ApiServer::start(ApiServerConfig config) {
    if (!config.listener) return fail("control API: no listening socket");
    if (config.controller == nullptr) return fail("control API: no controller");
    STOCKADE_TRY_VOID(set_nonblocking(config.listener.get(), "the control API's listening socket"));
    std::unique_ptr<ApiServer> server(new ApiServer());
    server->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!server->wake_) return fail_sys("control API: eventfd");
    server->state_ = std::make_unique<State>();
    server->state_->wake = server->wake_.get();
    server->state_->config = std::move(config);
    State* s = server->state_.get();
    auto thread = start_thread(s->config.on_thread_start, [s] { s->run(); });
    if (!thread) return std::unexpected(std::move(thread).error().context("control API thread"));
    server->thread_ = std::move(*thread);
    return server;
}

ApiServer::~ApiServer() {
    if (thread_.joinable()) {
        std::uint64_t one = 1;
        (void)!::write(wake_.get(), &one, sizeof one);
        thread_.join();
    }
}

}  // namespace stockade::api
