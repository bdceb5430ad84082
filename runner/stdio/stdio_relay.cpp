#include "runner/stdio/stdio_relay.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

#include "base/io.hpp"
#include "base/thread.hpp"
#include "guest/abi.hpp"
#include "runner/api/exec_stream.hpp"

namespace stockade {
namespace {

// Per stream, allocated when the stream first carries data.
constexpr std::size_t kBufferSize = 16u << 10;
// Connections accepted but not yet named by their stream byte (and an exec's id).
constexpr std::size_t kMaxUnidentified = 16;
// Execs running at once.
constexpr std::size_t kMaxExecs = 16;
// Bytes waiting for an exec's client before its output is no longer read.
constexpr std::size_t kClientBacklog = 64u << 10;
// Control messages not yet taken by a guest that stopped reading them: more are refused.
constexpr std::size_t kMaxControlBacklog = 1u << 20;
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

namespace gc = guest_control;

// A connection until its stream is named: the stream byte, then for an exec's stream the
// exec's id.
struct Unidentified {
    UniqueFd fd;
    std::array<char, gc::kExecStreamHeader> head{};
    std::size_t got = 0;
};

// One exec: its client (the control API's connection) and the guest's four streams.
struct Exec {
    std::uint32_t id = 0;
    bool stdin_open = false;
    bool terminal = false;
    UniqueFd client;
    std::string to_client;  // response head and frames not yet written
    bool client_in_ended = false;
    std::string in_buf;  // client bytes for the guest's in stream
    bool in_shut = false, in_closed = false;
    UniqueFd status, in, out, err;
    bool status_seen = false, in_seen = false, out_seen = false, err_seen = false;
    guest_abi::VsockStatus status_bytes{};
    std::size_t status_got = 0;
    bool finished = false;  // the exit frame is queued
    bool gone = false;      // to be dropped after this round
};

// A named stream takes its slot once: a second connection naming it is refused.
bool take_stream(bool& seen, UniqueFd& slot, UniqueFd& conn) {
    if (seen) return false;
    seen = true;
    slot = std::move(conn);
    return true;
}

}  // namespace

struct StdioRelay::State {
    StdioRelayConfig config;
    int wake = -1;
    std::atomic<bool> stopping{false};
    std::vector<Unidentified> unidentified;
    UniqueFd status_sock;
    bool status_seen = false;
    guest_abi::VsockStatus status{};
    std::size_t status_got = 0;
    bool reported = false;
    Input in;
    Output out, err;
    std::atomic<std::uint64_t> refused{0};
    std::atomic<std::uint64_t> exec_count{0};
    // The control stream, and the messages queued for it.
    UniqueFd control;
    bool control_seen = false;
    std::atomic<bool> control_up{false};
    std::atomic<bool> control_lost{false};  // it was connected, and ended
    std::string control_out;
    std::vector<std::unique_ptr<Exec>> execs;
    std::atomic<std::size_t> execs_running{0};
    std::atomic<std::size_t> control_backlog{0};  // control_out's size, for other threads
    std::uint32_t next_exec_id = 1;               // under mu
    // Handed over by other threads, taken when the thread wakes.
    std::mutex mu;
    std::string queued_control;
    std::vector<std::unique_ptr<Exec>> queued_execs;
    std::set<std::uint32_t> terminal_execs;  // the execs with a terminal, until dropped

    // What the thread polls, and what each entry is.
    enum SlotKind {
        kWake,
        kListener,
        kUnidentified,
        kStatus,
        kInSock,
        kInHost,
        kOut,
        kErr,
        kControl,
        kExecClient,
        kExecStatus,
        kExecIn,
        kExecOut,
        kExecErr
    };
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
    bool take_exec_stream(gc::ExecStream stream, std::uint32_t id, UniqueFd& conn);
    void take_queued();
    void serve_control(short revents);
    void serve_exec(Exec& e, SlotKind kind, short revents);
    void check_exec(Exec& e);
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
        unidentified.push_back({std::move(conn)});
    }
}

void StdioRelay::State::identify(std::size_t i) {
    Unidentified& u = unidentified[i];
    // The stream byte alone first: a workload stream's data follows it at once.
    const bool exec = u.got > 0;
    const std::size_t want = exec ? gc::kExecStreamHeader - u.got : 1;
    const ssize_t n = ::read(u.fd.get(), u.head.data() + u.got, want);
    if (n < 0 && transient(errno)) return;
    if (n > 0) u.got += static_cast<std::size_t>(n);
    const char id = u.head[0];
    const bool exec_byte = id == static_cast<char>(gc::ExecStream::status) ||
                           id == static_cast<char>(gc::ExecStream::in) ||
                           id == static_cast<char>(gc::ExecStream::out) ||
                           id == static_cast<char>(gc::ExecStream::err);
    if (n > 0 && exec_byte && u.got < gc::kExecStreamHeader) return;  // the id follows
    // Taken or closed here; the emptied entry is dropped after this round.
    UniqueFd conn = std::move(u.fd);
    if (n <= 0) {
        ++refused;
        return;
    }
    if (exec_byte) {
        std::uint32_t exec_id = 0;
        for (std::size_t b = 0; b < 4; ++b)
            exec_id |= std::uint32_t{static_cast<unsigned char>(u.head[1 + b])} << (8 * b);
        if (!take_exec_stream(static_cast<gc::ExecStream>(id), exec_id, conn)) ++refused;
        return;
    }
    using S = guest_abi::VsockStream;
    auto take = [&](bool& seen, UniqueFd& slot) { return take_stream(seen, slot, conn); };
    bool taken = false;
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
        case S::control:
            taken = take(control_seen, control);
            if (taken) control_up = true;
            break;
    }
    if (!taken) ++refused;
}

bool StdioRelay::State::take_exec_stream(gc::ExecStream stream, std::uint32_t id, UniqueFd& conn) {
    for (auto& e : execs) {
        if (e->id != id || e->gone) continue;
        auto take = [&](bool& seen, UniqueFd& slot) { return take_stream(seen, slot, conn); };
        switch (stream) {
            case gc::ExecStream::status:
                return take(e->status_seen, e->status);
            case gc::ExecStream::in: {
                if (!take(e->in_seen, e->in)) return false;
                // Without stdin, the exec's input ends at once.
                if (!e->stdin_open) {
                    (void)::shutdown(e->in.get(), SHUT_WR);
                    e->in_shut = true;
                }
                return true;
            }
            case gc::ExecStream::out:
                return take(e->out_seen, e->out);
            case gc::ExecStream::err:
                return take(e->err_seen, e->err);
        }
    }
    return false;
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

void StdioRelay::State::take_queued() {
    std::lock_guard lock(mu);
    control_out += queued_control;
    queued_control.clear();
    for (auto& e : queued_execs)
        execs.push_back(std::move(e));
    queued_execs.clear();
}

void StdioRelay::State::serve_control(short revents) {
    if (revents & POLLOUT) {
        const ssize_t n =
            ::send(control.get(), control_out.data(), control_out.size(), MSG_NOSIGNAL);
        if (n > 0) control_out.erase(0, static_cast<std::size_t>(n));
        if (n < 0 && !transient(errno)) revents |= POLLHUP;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        // stockade-init sends nothing here: whatever comes is dropped, a bounded read a round.
        char sink[512];
        const ssize_t n = ::read(control.get(), sink, sizeof sink);
        if (n == 0 || (n < 0 && !transient(errno))) {
            control.reset();
            control_up = false;
            control_lost = true;
            control_out.clear();
        }
    }
}

void StdioRelay::State::serve_exec(Exec& e, SlotKind kind, short revents) {
    char buf[16 * 1024];
    switch (kind) {
        case kExecClient: {
            if ((revents & POLLOUT) && !e.to_client.empty()) {
                const ssize_t n =
                    ::send(e.client.get(), e.to_client.data(), e.to_client.size(), MSG_NOSIGNAL);
                if (n > 0) e.to_client.erase(0, static_cast<std::size_t>(n));
                if (n < 0 && !transient(errno)) e.gone = true;  // the client went away
            }
            if (revents & POLLIN) {
                const ssize_t n = ::read(e.client.get(), buf, sizeof buf);
                if (n > 0 && e.stdin_open && !e.in_closed)
                    e.in_buf.append(buf, static_cast<std::size_t>(n));
                else if (n == 0 || (n < 0 && !transient(errno)))
                    e.client_in_ended = true;
            }
            // The client closed its connection: the exec is not wanted any more. Closing its
            // streams tells the guest to kill it.
            if ((revents & (POLLHUP | POLLERR)) && !(revents & POLLIN)) e.gone = true;
            break;
        }
        case kExecStatus: {
            const ssize_t n = ::read(e.status.get(), e.status_bytes.data() + e.status_got,
                                     e.status_bytes.size() - e.status_got);
            if (n > 0)
                e.status_got += static_cast<std::size_t>(n);
            else if (n == 0 || !transient(errno))
                e.status.reset();
            break;
        }
        case kExecIn: {
            const ssize_t n = ::send(e.in.get(), e.in_buf.data(), e.in_buf.size(), MSG_NOSIGNAL);
            if (n > 0) {
                e.in_buf.erase(0, static_cast<std::size_t>(n));
            } else if (n < 0 && !transient(errno)) {
                e.in_closed = true;  // the command closed its stdin
                e.in_buf.clear();
            }
            break;
        }
        case kExecOut:
        case kExecErr: {
            UniqueFd& sock = kind == kExecOut ? e.out : e.err;
            const ssize_t n = ::read(sock.get(), buf, sizeof buf);
            if (n > 0)
                e.to_client +=
                    api::exec_frame(kind == kExecOut ? api::ExecFrame::out : api::ExecFrame::err,
                                    {buf, static_cast<std::size_t>(n)});
            else if (n == 0 || !transient(errno))
                sock.reset();
            break;
        }
        default:
            break;
    }
}

void StdioRelay::State::check_exec(Exec& e) {
    if (e.gone) return;
    if (e.in && !e.in_shut && !e.in_closed && e.client_in_ended && e.in_buf.empty()) {
        (void)::shutdown(e.in.get(), SHUT_WR);
        e.in_shut = true;
    }
    if (!e.finished && e.status_got == e.status_bytes.size() && e.out_seen && !e.out &&
        e.err_seen && !e.err) {
        const std::uint32_t v = guest_abi::decode_status(e.status_bytes);
        e.to_client += api::exec_exit_frame(v <= 255 ? static_cast<int>(v) : 125);
        e.finished = true;
        // Closing the status stream tells the exec's process in the guest that all arrived.
        e.status.reset();
        e.in.reset();
    }
    // A status stream that ended without a status: the guest gave the exec up.
    if (!e.finished && e.status_seen && !e.status && e.status_got < e.status_bytes.size())
        e.gone = true;
    if (e.finished && e.to_client.empty()) e.gone = true;
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
        add(unidentified[i].fd.get(), POLLIN, {kUnidentified, i, false});
    if (control)
        add(control.get(), static_cast<short>(POLLIN | (control_out.empty() ? 0 : POLLOUT)),
            {kControl, 0, false});
    for (std::size_t i = 0; i < execs.size(); ++i) {
        const Exec& e = *execs[i];
        short ev = e.to_client.empty() ? 0 : POLLOUT;
        if (!e.client_in_ended && e.in_buf.size() < kBufferSize) ev |= POLLIN;
        add(e.client.get(), ev, {kExecClient, i, false});
        if (e.status && e.status_got < e.status_bytes.size())
            add(e.status.get(), POLLIN, {kExecStatus, i, false});
        if (e.in && !e.in_closed && !e.in_buf.empty())
            add(e.in.get(), POLLOUT, {kExecIn, i, false});
        if (e.to_client.size() < kClientBacklog) {
            if (e.out) add(e.out.get(), POLLIN, {kExecOut, i, false});
            if (e.err) add(e.err.get(), POLLIN, {kExecErr, i, false});
        }
    }
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
        case kWake: {
            std::uint64_t n = 0;
            (void)!::read(wake, &n, sizeof n);
            if (stopping) return false;
            take_queued();
            break;
        }
        case kControl:
            serve_control(ev);
            break;
        case kExecClient:
        case kExecStatus:
        case kExecIn:
        case kExecOut:
        case kExecErr:
            serve_exec(*execs[s.index], s.kind, ev);
            break;
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
        std::erase_if(unidentified, [](const Unidentified& u) { return !u.fd; });
        for (auto& e : execs)
            check_exec(*e);
        std::vector<std::uint32_t> ended_terminals;
        std::erase_if(execs, [&](const std::unique_ptr<Exec>& e) {
            if (e->gone && e->terminal) ended_terminals.push_back(e->id);
            return e->gone;
        });
        if (!ended_terminals.empty()) {
            std::lock_guard lock(mu);
            for (std::uint32_t id : ended_terminals)
                terminal_execs.erase(id);
        }
        execs_running = execs.size();
        control_backlog = control_out.size();
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

bool StdioRelay::control_connected() const {
    return state_->control_up;
}

bool StdioRelay::control_ended() const {
    return state_->control_lost;
}

Result<> StdioRelay::send_control(const guest_control::Message& m) {
    if (!state_->control_up) return fail("stockade-init's control stream is not connected");
    {
        std::lock_guard lock(state_->mu);
        if (state_->control_backlog + state_->queued_control.size() > kMaxControlBacklog)
            return fail("the guest's init is not taking requests (1 MiB of them wait)");
        state_->queued_control += guest_control::encode(m);
    }
    const std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    return {};
}

Result<> StdioRelay::resize_exec(std::uint32_t id, guest_control::WindowSize size) {
    guest_control::Message m{guest_control::MessageType::resize, 0, std::nullopt};
    m.window = size;
    m.resize_exec = id;
    {
        std::lock_guard lock(state_->mu);
        if (!state_->terminal_execs.contains(id))
            return fail("no exec {} with a terminal is running", id);
    }
    return send_control(m);
}

Result<> StdioRelay::start_exec(guest_control::ExecRequest request, UniqueFd& client,
                                std::string head, std::string client_input) {
    if (!state_->control_up) return fail("stockade-init's control stream is not connected");
    auto e = std::make_unique<Exec>();
    e->stdin_open = request.stdin_open;
    e->terminal = request.terminal;
    e->to_client = std::move(head);
    if (request.stdin_open) e->in_buf = std::move(client_input);
    {
        std::lock_guard lock(state_->mu);
        if (state_->execs_running + state_->queued_execs.size() >= kMaxExecs)
            return fail("{} execs are running: wait for one to end", kMaxExecs);
        if (state_->control_backlog + state_->queued_control.size() > kMaxControlBacklog)
            return fail("the guest's init is not taking requests (1 MiB of them wait)");
        e->client = std::move(client);
        request.id = e->id = state_->next_exec_id++;
        e->to_client = api::with_exec_id(std::move(e->to_client), e->id);
        if (e->terminal) state_->terminal_execs.insert(e->id);
        state_->queued_control +=
            guest_control::encode({guest_control::MessageType::exec, 0, std::move(request)});
        state_->queued_execs.push_back(std::move(e));
    }
    ++state_->exec_count;
    const std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    return {};
}

void StdioRelay::stop() {
    if (!thread_.joinable()) return;
    state_->stopping = true;
    const std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    thread_.join();
}

StdioRelay::Counters StdioRelay::counters() const {
    return {state_->in.bytes.load(), state_->out.bytes.load(), state_->err.bytes.load(),
            state_->refused.load(), state_->exec_count.load()};
}

}  // namespace stockade
