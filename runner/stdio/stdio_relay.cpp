#include "runner/stdio/stdio_relay.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <vector>

#include "base/io.hpp"
#include "base/mapping.hpp"
#include "base/thread.hpp"
#include "guest/abi.hpp"

namespace stockade {
namespace {

// Per stream, allocated when the stream first carries data.
constexpr std::size_t kBufferSize = 16u << 10;
// Connections accepted but not yet named by their stream byte.
constexpr std::size_t kMaxUnidentified = 4;
// Connections taken per wake-up, so a guest that keeps connecting cannot hold the thread.
constexpr int kAcceptsPerRound = 16;

bool transient(int err) {
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

// A guest-to-host stream: socket -> buffer -> host descriptor.
struct Output {
    int host = -1;
    bool host_regular = false;  // a regular file takes any write without blocking
    bool host_broken = false;   // the host side failed (e.g. EPIPE): the rest is discarded
    bool seen = false;          // the guest connected it
    UniqueFd sock;              // invalid: not connected yet, or ended
    std::vector<std::uint8_t> buf;
    std::size_t off = 0, len = 0;
    std::atomic<std::uint64_t> bytes{0};
};

// Host stdin -> buffer -> the guest's `in` stream.
struct Input {
    int host = -1;
    bool seen = false;
    bool host_ended = false;  // end of host input (or an error reading it)
    bool shut = false;        // the end was passed on (shutdown for writing)
    bool closed = false;      // the guest closed its side: nothing more is sent
    UniqueFd sock;
    std::vector<std::uint8_t> buf;
    std::size_t off = 0, len = 0;
    std::atomic<std::uint64_t> bytes{0};
};

}  // namespace

struct StdioRelay::State {
    StdioRelayConfig config;
    int wake = -1;
    std::vector<UniqueFd> unidentified;
    UniqueFd status_sock;
    bool status_seen = false;
    guest_abi::VsockStatus status{};
    std::size_t status_got = 0;
    bool reported = false;
    Input in;
    Output out, err;
    std::atomic<std::uint64_t> refused{0};

    // What the thread polls, and what each entry is.
    enum SlotKind { kWake, kListener, kUnidentified, kStatus, kInSock, kInHost, kOut, kErr };
    struct Slot {
        SlotKind kind;
        std::size_t index;
        bool host;  // kOut/kErr: the host descriptor rather than the socket
    };
    void run();
    void watch_set(std::vector<pollfd>& fds, std::vector<Slot>& slots) const;
    // Serves one ready entry; false: the relay was told to stop.
    bool serve(Slot s, short revents);
    void accept_some();
    void identify(std::size_t i);
    void read_status();
    void read_output(Output& o);
    void write_output(Output& o);
    void read_host_input();
    void write_input();
    void check_done();
};

namespace {

bool is_regular(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

void StdioRelay::State::accept_some() {
    for (int i = 0; i < kAcceptsPerRound && config.listener; ++i) {
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        const int fd = ::accept4(config.listener.get(), reinterpret_cast<sockaddr*>(&peer), &len,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        UniqueFd conn(fd);
        if (!config.is_guest(peer, len) || unidentified.size() >= kMaxUnidentified) {
            ++refused;
            continue;
        }
        unidentified.push_back(std::move(conn));
    }
}

void StdioRelay::State::identify(std::size_t i) {
    char id = 0;
    const ssize_t n = ::read(unidentified[i].get(), &id, 1);
    if (n < 0 && transient(errno)) return;
    // Taken or closed here; the emptied entry is dropped after this round.
    UniqueFd conn = std::move(unidentified[i]);
    using S = guest_abi::VsockStream;
    auto take = [&](bool& seen, UniqueFd& slot) {
        if (seen) return false;
        seen = true;
        slot = std::move(conn);
        return true;
    };
    bool taken = false;
    if (n == 1) {
        switch (static_cast<S>(id)) {
            case S::status:
                taken = take(status_seen, status_sock);
                break;
            case S::in:
                taken = take(in.seen, in.sock);
                break;
            case S::out:
                taken = take(out.seen, out.sock);
                break;
            case S::err:
                taken = take(err.seen, err.sock);
                break;
        }
    }
    if (!taken) ++refused;
    // Every stream is there: nobody else gets to connect.
    if (status_seen && in.seen && out.seen && err.seen) config.listener.reset();
}

void StdioRelay::State::read_status() {
    const ssize_t n =
        ::read(status_sock.get(), status.data() + status_got, status.size() - status_got);
    if (n > 0) {
        status_got += static_cast<std::size_t>(n);
        return;
    }
    if (n < 0 && transient(errno)) return;
    status_sock.reset();  // ended, with or without a status
}

void StdioRelay::State::read_output(Output& o) {
    if (o.buf.empty()) o.buf.resize(kBufferSize);
    const ssize_t n = ::read(o.sock.get(), o.buf.data(), o.buf.size());
    if (n > 0) {
        o.bytes += static_cast<std::uint64_t>(n);
        o.off = 0;
        o.len = o.host_broken ? 0 : static_cast<std::size_t>(n);
        return;
    }
    if (n < 0 && transient(errno)) return;
    o.sock.reset();  // end of the stream (or the guest reset it)
}

void StdioRelay::State::write_output(Output& o) {
    // A pipe or terminal that polls writable takes PIPE_BUF bytes without blocking.
    const std::size_t chunk = o.host_regular ? o.len : std::min<std::size_t>(o.len, PIPE_BUF);
    const ssize_t n = ::write(o.host, o.buf.data() + o.off, chunk);
    if (n > 0) {
        o.off += static_cast<std::size_t>(n);
        o.len -= static_cast<std::size_t>(n);
        return;
    }
    if (n < 0 && transient(errno)) return;
    o.host_broken = true;  // nobody reads (EPIPE): keep draining the guest, discard
    o.len = 0;
}

void StdioRelay::State::read_host_input() {
    // A first read into a small buffer: an empty stdin (/dev/null) costs no buffer at all.
    std::uint8_t first[512];
    const bool small = in.buf.empty();
    const ssize_t n =
        ::read(in.host, small ? first : in.buf.data(), small ? sizeof first : in.buf.size());
    if (small && n > 0) {
        in.buf.resize(kBufferSize);
        std::memcpy(in.buf.data(), first, static_cast<std::size_t>(n));
    }
    if (n > 0) {
        in.off = 0;
        in.len = static_cast<std::size_t>(n);
        return;
    }
    if (n < 0 && transient(errno)) return;
    in.host_ended = true;  // end of input, or a stdin that cannot be read (closed)
}

void StdioRelay::State::write_input() {
    const ssize_t n = ::send(in.sock.get(), in.buf.data() + in.off, in.len, MSG_NOSIGNAL);
    if (n > 0) {
        in.bytes += static_cast<std::uint64_t>(n);
        in.off += static_cast<std::size_t>(n);
        in.len -= static_cast<std::size_t>(n);
        return;
    }
    if (n < 0 && transient(errno)) return;
    in.closed = true;  // the workload closed its stdin: the rest of the input is not wanted
    in.len = 0;
}

void StdioRelay::State::check_done() {
    if (in.sock && !in.closed && !in.shut && in.host_ended && in.len == 0) {
        (void)::shutdown(in.sock.get(), SHUT_WR);
        in.shut = true;
    }
    const auto drained = [](const Output& o) { return o.seen && !o.sock && o.len == 0; };
    if (reported || status_got < status.size() || !drained(out) || !drained(err)) return;
    reported = true;
    status_sock.reset();  // tells stockade-init that everything arrived
    const std::uint32_t value = guest_abi::decode_status(status);
    // The guest's word is a status only in 0..255; anything else is its own failure.
    config.on_exit(value <= 255 ? static_cast<int>(value) : 125);
}

void StdioRelay::State::watch_set(std::vector<pollfd>& fds, std::vector<Slot>& slots) const {
    fds.clear();
    slots.clear();
    auto add = [&](int fd, short events, Slot s) {
        fds.push_back({fd, events, 0});
        slots.push_back(s);
    };
    add(wake, POLLIN, {kWake, 0, false});
    if (config.listener) add(config.listener.get(), POLLIN, {kListener, 0, false});
    for (std::size_t i = 0; i < unidentified.size(); ++i)
        add(unidentified[i].get(), POLLIN, {kUnidentified, i, false});
    if (status_sock && status_got < status.size())
        add(status_sock.get(), POLLIN, {kStatus, 0, false});
    if (in.sock && !in.closed) {
        if (in.len > 0)
            add(in.sock.get(), POLLOUT, {kInSock, 0, false});
        else if (!in.host_ended)
            add(in.host, POLLIN, {kInHost, 0, true});
    }
    for (const Output* o : {&out, &err}) {
        const SlotKind k = o == &out ? kOut : kErr;
        if (o->len > 0)
            add(o->host, POLLOUT, {k, 0, true});
        else if (o->sock)
            add(o->sock.get(), POLLIN, {k, 0, false});
    }
}

bool StdioRelay::State::serve(Slot s, short ev) {
    switch (s.kind) {
        case kWake:
            return false;
        case kListener:
            accept_some();
            break;
        case kUnidentified:
            identify(s.index);
            break;
        case kStatus:
            read_status();
            break;
        case kInSock:
            write_input();
            break;
        case kInHost:
            if (ev & POLLNVAL)
                in.host_ended = true;
            else
                read_host_input();
            break;
        case kOut:
        case kErr: {
            Output& o = s.kind == kOut ? out : err;
            if (!s.host) {
                read_output(o);
            } else if (ev & POLLNVAL) {
                o.host_broken = true;
                o.len = 0;
            } else {
                write_output(o);
            }
            break;
        }
    }
    return true;
}

void StdioRelay::State::run() {
    std::vector<pollfd> fds;
    std::vector<Slot> slots;
    for (;;) {
        watch_set(fds, slots);
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return;  // cannot happen with valid arguments; the session's stop ends the run
        }
        // In order: of two connections naming the same stream, the first one wins.
        for (std::size_t i = 0; i < fds.size(); ++i)
            if (fds[i].revents != 0 && !serve(slots[i], fds[i].revents)) return;
        std::erase_if(unidentified, [](const UniqueFd& fd) { return !fd; });
        check_done();
    }
}

Result<std::unique_ptr<StdioRelay>> StdioRelay::start(StdioRelayConfig config) {
    if (!config.listener) return fail("stdio relay: no listening socket");
    STOCKADE_TRY_VOID(set_nonblocking(config.listener.get(), "the stdio relay's listening socket"));
    std::unique_ptr<StdioRelay> relay(new StdioRelay());
    relay->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!relay->wake_) return fail_sys("stdio relay: eventfd");
    auto state = std::make_unique<State>();
    state->wake = relay->wake_.get();
    state->in.host = config.host_in;
    state->out.host = config.host_out;
    state->err.host = config.host_err;
    state->out.host_regular = is_regular(config.host_out);
    state->err.host_regular = is_regular(config.host_err);
    state->config = std::move(config);
    relay->state_ = std::move(state);

    State* s = relay->state_.get();
    relay->thread_ = STOCKADE_TRY(start_thread(s->config.on_thread_start, [s] { s->run(); }));
    return relay;
}

StdioRelay::~StdioRelay() {
    stop();
}

void StdioRelay::stop() {
    if (!thread_.joinable()) return;
    const std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    thread_.join();
}

StdioRelay::Counters StdioRelay::counters() const {
    return {state_->in.bytes.load(), state_->out.bytes.load(), state_->err.bytes.load(),
            state_->refused.load()};
}

}  // namespace stockade
