// The vsock stdio relay (runner/stdio/stdio_relay.hpp) with Unix stream sockets standing in
// for vsock: the guest side is this test, connecting and naming streams as stockade-init
// does, or misbehaving.
#include "runner/stdio/stdio_relay.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "base/uapi.hpp"
#include "guest/abi.hpp"
#include "guest/control.hpp"
#include "policy/policy.hpp"
#include "runner/api/exec_stream.hpp"
#include "runner/vmm/seccomp_profiles.hpp"
#include "tests/support/child.hpp"

namespace stockade {
namespace {

using namespace std::chrono_literals;
using S = guest_abi::VsockStream;

sockaddr_un test_address() {
    static std::atomic<int> n{0};
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string name =
        "stockade-relay-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    std::memcpy(a.sun_path + 1, name.data(), name.size());  // abstract: nothing on disk
    return a;
}

UniqueFd memfd() {
    return UniqueFd(::memfd_create("relay-test", MFD_CLOEXEC));
}

std::string contents(int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    std::string s(static_cast<std::size_t>(st.st_size), '\0');
    EXPECT_EQ(::pread(fd, s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
    return s;
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(gen());
    return s;
}

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        ASSERT_GT(n, 0) << std::strerror(errno);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::string status_bytes(std::uint32_t v) {
    return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
            static_cast<char>(v >> 24)};
}

// A relay on a fresh listening socket, with the guest's side of it.
class Relay {
  public:
    explicit Relay(
        int in, int out, int err, std::function<bool()> is_guest = [] { return true; }) {
        UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        addr_ = test_address();
        EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr_), sizeof addr_), 0);
        EXPECT_EQ(::listen(listener.get(), 8), 0);
        StdioRelayConfig c;
        c.listener = std::move(listener);
        c.is_guest = [is_guest](const sockaddr_storage& peer, socklen_t) {
            return peer.ss_family == AF_UNIX && is_guest();
        };
        c.host_in = in;
        c.host_out = out;
        c.host_err = err;
        c.on_exit = [this](int status) {
            std::lock_guard lock(mu_);
            statuses_.push_back(status);
            cv_.notify_all();
        };
        auto r = StdioRelay::start(std::move(c));
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
        if (r) relay_ = std::move(*r);
    }

    // Connects as the guest and names the stream (nullopt: sends no stream byte).
    UniqueFd connect(std::optional<char> id) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr_), sizeof addr_), 0);
        if (id) {
            // A connection the relay refuses may be closed before its byte is written (it
            // refuses a stranger at accept): the write then fails, no signal raised.
            const ssize_t n = ::send(fd.get(), &*id, 1, MSG_NOSIGNAL);
            EXPECT_TRUE(n == 1 || (n < 0 && (errno == EPIPE || errno == ECONNRESET)))
                << std::strerror(errno);
        }
        return fd;
    }
    UniqueFd connect(S stream) { return connect(static_cast<char>(stream)); }

    // The status reported within `timeout`, if any.
    std::optional<int> status(std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, timeout, [this] { return !statuses_.empty(); });
        if (statuses_.empty()) return std::nullopt;
        EXPECT_EQ(statuses_.size(), 1u) << "reported once";
        return statuses_.front();
    }

    StdioRelay& relay() { return *relay_; }

  private:
    sockaddr_un addr_{};
    std::unique_ptr<StdioRelay> relay_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<int> statuses_;
};

// Whether the peer closed the connection (EOF or reset) within a second.
bool closed_by_peer(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return false;
    char c;
    return ::read(fd, &c, 1) <= 0;
}

TEST(StdioRelay, OutputIsByteExactAndTheStatusComesOnlyAfterAllOfIt) {
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC)), out = memfd(), err = memfd();
    Relay r(in.get(), out.get(), err.get());
    auto status = r.connect(S::status);
    auto gin = r.connect(S::in);
    auto gout = r.connect(S::out);
    auto gerr = r.connect(S::err);
    // Binary data, every byte value, more than the relay's buffers and the socket's.
    const std::string out_data = random_bytes(3 << 20, 1), err_data = random_bytes(70000, 2);
    std::thread writer([&] { send_all(gout.get(), out_data); });
    send_all(gerr.get(), err_data);
    writer.join();
    send_all(status.get(), status_bytes(42));
    EXPECT_FALSE(r.status(300ms)) << "reported while the output streams were still open";
    ASSERT_EQ(::shutdown(gout.get(), SHUT_WR), 0);
    EXPECT_FALSE(r.status(300ms)) << "reported while stderr was still open";
    ASSERT_EQ(::shutdown(gerr.get(), SHUT_WR), 0);
    ASSERT_EQ(r.status(), 42);
    // The status is reported after the last byte reached the host: nothing is missing now.
    EXPECT_TRUE(contents(out.get()) == out_data) << contents(out.get()).size() << " bytes";
    EXPECT_TRUE(contents(err.get()) == err_data);
    EXPECT_TRUE(closed_by_peer(status.get())) << "the status stream is closed when done";
    const auto c = r.relay().counters();
    EXPECT_EQ(c.out, out_data.size());
    EXPECT_EQ(c.err, err_data.size());
    EXPECT_EQ(c.refused, 0u);
}

TEST(StdioRelay, HostInputReachesTheGuestAndItsEndIsPassedOn) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd host_in_r(p[0]), host_in_w(p[1]), out = memfd(), err = memfd();
    Relay r(host_in_r.get(), out.get(), err.get());
    auto gin = r.connect(S::in);
    const std::string input = random_bytes(200000, 3);
    std::thread feeder([&] {
        send_all(host_in_w.get(), input);
        host_in_w.reset();  // end of input
    });
    EXPECT_TRUE(test::read_all(gin.get()) == input) << "then EOF";
    feeder.join();
    EXPECT_EQ(r.relay().counters().in, input.size());
}

TEST(StdioRelay, AGuestThatClosesItsStdinDoesNotStopTheOutput) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd host_in_r(p[0]), host_in_w(p[1]), out = memfd(), err = memfd();
    Relay r(host_in_r.get(), out.get(), err.get());
    auto status = r.connect(S::status);
    auto gin = r.connect(S::in);
    auto gout = r.connect(S::out);
    auto gerr = r.connect(S::err);
    gin.reset();  // the workload never reads its stdin
    const std::string input(1 << 20, 'i');
    std::thread feeder([&] { (void)!::write(host_in_w.get(), input.data(), 65536); });
    send_all(gout.get(), "done\n");
    gout.reset();
    gerr.reset();
    send_all(status.get(), status_bytes(0));
    EXPECT_EQ(r.status(), 0);
    EXPECT_EQ(contents(out.get()), "done\n");
    feeder.join();
}

TEST(StdioRelay, ConnectionsFromOthersAndUnknownOrRepeatedStreamsAreClosedUnread) {
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC)), out = memfd(), err = memfd();
    std::atomic<bool> guest{false};
    Relay r(in.get(), out.get(), err.get(), [&] { return guest.load(); });
    auto stranger = r.connect(S::out);  // not the guest's CID
    EXPECT_TRUE(closed_by_peer(stranger.get()));
    guest = true;
    auto unknown = r.connect('x');
    EXPECT_TRUE(closed_by_peer(unknown.get()));
    auto silent = r.connect(std::nullopt);  // connects and says nothing: held, harmless
    auto gout = r.connect(S::out);
    auto again = r.connect(S::out);
    EXPECT_TRUE(closed_by_peer(again.get()));
    auto status = r.connect(S::status);
    auto gerr = r.connect(S::err);
    send_all(gout.get(), "real\n");
    gout.reset();
    gerr.reset();
    send_all(status.get(), status_bytes(3));
    EXPECT_EQ(r.status(), 3);
    EXPECT_EQ(contents(out.get()), "real\n");
    EXPECT_EQ(r.relay().counters().refused, 3u);
}

namespace gc = guest_control;

// Reads from `fd` until `n` bytes came or it ended (within a few seconds).
std::string read_some(int fd, std::size_t n) {
    std::string out;
    char buf[4096];
    while (out.size() < n) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) != 1) break;
        const ssize_t got = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
        if (got <= 0) break;
        out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
}

// Everything until the peer closes.
std::string read_to_end(int fd) {
    return read_some(fd, std::size_t{1} << 30);
}

// stockade-init's side of the control stream: connected, then one message read off it.
gc::Message next_message(int control) {
    std::string bytes;
    for (;;) {
        auto d = gc::decode(bytes);
        EXPECT_TRUE(d) << d.error();
        if (!d) return {};
        if (*d) return (*d)->message;
        const std::string more = read_some(control, 1);
        EXPECT_EQ(more.size(), 1u) << "the control stream ended";
        if (more.empty()) return {};
        bytes += more;
    }
}

UniqueFd connect_exec(Relay& r, gc::ExecStream s, std::uint32_t id) {
    auto fd = r.connect(std::nullopt);
    send_all(fd.get(), gc::exec_stream_header(s, id));
    return fd;
}

bool wait_for(const std::function<bool()>& cond) {
    for (int i = 0; i < 500 && !cond(); ++i)
        std::this_thread::sleep_for(10ms);
    return cond();
}

TEST(StdioRelay, AnExecRunsOnItsOwnStreamsAndItsClientGetsFramesThenTheStatus) {
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC)), out = memfd(), err = memfd();
    Relay r(in.get(), out.get(), err.get());
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd client(pair[0]), api_side(pair[1]);
    gc::ExecRequest req{0, {"cat"}, {"A=1"}, "/", true};
    auto refused = r.relay().start_exec(req, api_side, "HEAD", "");
    EXPECT_FALSE(refused) << "no control stream yet";
    EXPECT_TRUE(api_side) << "a refused exec leaves the connection with the caller";

    auto control = r.connect(S::control);
    ASSERT_TRUE(wait_for([&] { return r.relay().control_connected(); }));
    ASSERT_TRUE(r.relay().start_exec(req, api_side, "HEAD", "early "));
    EXPECT_FALSE(api_side);
    const gc::Message m = next_message(control.get());
    ASSERT_EQ(m.type, gc::MessageType::exec);
    ASSERT_TRUE(m.exec);
    EXPECT_EQ(m.exec->argv, req.argv);
    EXPECT_EQ(m.exec->env, req.env);
    const std::uint32_t id = m.exec->id;
    EXPECT_EQ(r.relay().counters().execs, 1u);

    // A stream naming another exec is refused; the exec's own are taken.
    auto stray = connect_exec(r, gc::ExecStream::out, id + 7);
    EXPECT_TRUE(closed_by_peer(stray.get()));
    auto status = connect_exec(r, gc::ExecStream::status, id);
    auto gin = connect_exec(r, gc::ExecStream::in, id);
    auto gout = connect_exec(r, gc::ExecStream::out, id);
    auto gerr = connect_exec(r, gc::ExecStream::err, id);
    auto again = connect_exec(r, gc::ExecStream::out, id);
    EXPECT_TRUE(closed_by_peer(again.get()));

    // stdin: what the client sent with its request, then more, then its end.
    send_all(client.get(), "input");
    ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
    EXPECT_EQ(read_to_end(gin.get()), "early input");

    const std::string binary = random_bytes(100'000, 7);
    send_all(gout.get(), binary);
    send_all(gerr.get(), "oops\n");
    gout.reset();
    gerr.reset();
    send_all(status.get(), status_bytes(3));
    // The relay closes the status stream once the client has it all.
    EXPECT_TRUE(closed_by_peer(status.get()));

    const std::string got = read_to_end(client.get());
    ASSERT_TRUE(got.starts_with("HEAD"));
    api::ExecFrameDecoder d;
    d.feed(std::string_view(got).substr(4));
    std::string o, e;
    std::optional<int> code;
    for (;;) {
        auto f = d.next();
        ASSERT_TRUE(f) << f.error();
        if (!*f) break;
        if ((*f)->kind == api::ExecFrame::out) o += (*f)->payload;
        if ((*f)->kind == api::ExecFrame::err) e += (*f)->payload;
        if ((*f)->kind == api::ExecFrame::exit) {
            EXPECT_FALSE(code) << "one exit frame";
            code = (*f)->status;
        }
    }
    EXPECT_EQ(o, binary);
    EXPECT_EQ(e, "oops\n");
    EXPECT_EQ(code, 3);
    EXPECT_EQ(contents(out.get()), "") << "an exec's output is not the workload's";
}

// Only a running exec with a terminal can be resized; the resize names it on the control
// stream.
TEST(StdioRelay, OnlyARunningExecsTerminalIsResized) {
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC)), out = memfd(), err = memfd();
    Relay r(in.get(), out.get(), err.get());
    auto control = r.connect(S::control);
    ASSERT_TRUE(wait_for([&] { return r.relay().control_connected(); }));
    std::uint32_t ids[2] = {};
    UniqueFd clients[2];
    for (int k = 0; k < 2; ++k) {
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        clients[k] = UniqueFd(pair[0]);
        UniqueFd api_side(pair[1]);
        gc::ExecRequest req{0, {"sh"}, {}, "/", false};
        req.terminal = k == 1;
        ASSERT_TRUE(r.relay().start_exec(req, api_side, "HEAD", ""));
        const gc::Message m = next_message(control.get());
        ASSERT_TRUE(m.exec);
        EXPECT_EQ(m.exec->terminal, k == 1);
        ids[k] = m.exec->id;
    }
    EXPECT_FALSE(r.relay().resize_exec(ids[0], {24, 80})) << "no terminal";
    EXPECT_FALSE(r.relay().resize_exec(ids[1] + 1, {24, 80})) << "no such exec";
    ASSERT_TRUE(r.relay().resize_exec(ids[1], {24, 80}));
    const gc::Message m = next_message(control.get());
    EXPECT_EQ(m.type, gc::MessageType::resize);
    EXPECT_EQ(m.resize_exec, ids[1]);
    EXPECT_EQ(m.window, (gc::WindowSize{24, 80}));
    // Its client leaves: the exec is dropped, and so is its terminal.
    clients[1].reset();
    EXPECT_TRUE(wait_for([&] { return !r.relay().resize_exec(ids[1], {1, 1}); }));
}

TEST(StdioRelay, AnExecsClientThatGoesAwayEndsItsStreamsInTheGuest) {
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC)), out = memfd(), err = memfd();
    Relay r(in.get(), out.get(), err.get());
    auto control = r.connect(S::control);
    ASSERT_TRUE(wait_for([&] { return r.relay().control_connected(); }));
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd client(pair[0]), api_side(pair[1]);
    ASSERT_TRUE(r.relay().start_exec({0, {"sleep", "100"}, {}, "/", false}, api_side, "", ""));
    const gc::Message m = next_message(control.get());
    ASSERT_TRUE(m.exec);
    auto status = connect_exec(r, gc::ExecStream::status, m.exec->id);
    auto gin = connect_exec(r, gc::ExecStream::in, m.exec->id);
    auto gout = connect_exec(r, gc::ExecStream::out, m.exec->id);
    // Without stdin, the exec's input ends at once.
    EXPECT_EQ(read_to_end(gin.get()), "");
    client.reset();  // the client disconnects mid-exec
    EXPECT_TRUE(closed_by_peer(status.get())) << "the guest is told to kill the command";
    EXPECT_TRUE(closed_by_peer(gout.get()));
}

TEST(StdioRelay, ControlMessagesReachTheGuestInOrderAndEndWithIt) {
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC)), out = memfd(), err = memfd();
    Relay r(in.get(), out.get(), err.get());
    EXPECT_FALSE(r.relay().send_control({gc::MessageType::start, 0, std::nullopt}));
    auto control = r.connect(S::control);
    ASSERT_TRUE(wait_for([&] { return r.relay().control_connected(); }));
    EXPECT_TRUE(r.relay().send_control({gc::MessageType::start, 0, std::nullopt}));
    EXPECT_TRUE(r.relay().send_control({gc::MessageType::signal, 9, std::nullopt}));
    EXPECT_TRUE(r.relay().send_control({gc::MessageType::poweroff, 0, std::nullopt}));
    EXPECT_EQ(next_message(control.get()).type, gc::MessageType::start);
    const gc::Message sig = next_message(control.get());
    EXPECT_EQ(sig.type, gc::MessageType::signal);
    EXPECT_EQ(sig.signal, 9);
    EXPECT_EQ(next_message(control.get()).type, gc::MessageType::poweroff);
    // Whatever the guest sends on it is dropped; its end is noticed.
    send_all(control.get(), random_bytes(10'000, 3));
    control.reset();
    EXPECT_TRUE(wait_for([&] { return !r.relay().control_connected(); }));
    EXPECT_FALSE(r.relay().send_control({gc::MessageType::start, 0, std::nullopt}));
}

TEST(StdioRelay, AStatusOutsideZeroTo255IsTheGuestsFailure) {
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC)), out = memfd(), err = memfd();
    Relay r(in.get(), out.get(), err.get());
    auto status = r.connect(S::status);
    r.connect(S::out).reset();
    r.connect(S::err).reset();
    send_all(status.get(), status_bytes(0x1234'5678));
    EXPECT_EQ(r.status(), 125);
}

TEST(StdioRelay, AHostStdoutNobodyReadsIsDrainedAndDiscarded) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd read_end(p[0]), write_end(p[1]), in(::open("/dev/null", O_RDONLY | O_CLOEXEC)),
        err = memfd();
    read_end.reset();  // EPIPE (SIGPIPE is ignored by the runner, and here)
    ::signal(SIGPIPE, SIG_IGN);
    Relay r(in.get(), write_end.get(), err.get());
    auto status = r.connect(S::status);
    auto gout = r.connect(S::out);
    auto gerr = r.connect(S::err);
    send_all(gout.get(), random_bytes(1 << 20, 4));  // would block if nothing drained it
    gout.reset();
    gerr.reset();
    send_all(status.get(), status_bytes(0));
    EXPECT_EQ(r.status(), 0);
}

TEST(StdioRelay, StopReturnsPromptlyWhileTheHostStdoutIsFull) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd read_end(p[0]), write_end(p[1]), in(::open("/dev/null", O_RDONLY | O_CLOEXEC)),
        err = memfd();
    auto r = std::make_unique<Relay>(in.get(), write_end.get(), err.get());
    auto gout = r->connect(S::out);
    // More than the pipe holds; nobody reads it (a terminal scrolled off, a stopped pager).
    std::thread writer([&] {
        const std::string data(1 << 20, 'x');
        (void)!::send(gout.get(), data.data(), data.size(), MSG_NOSIGNAL);
    });
    std::this_thread::sleep_for(300ms);
    const auto start = std::chrono::steady_clock::now();
    r->relay().stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    r.reset();  // the relay's end closes: the writer's remaining bytes fail
    writer.join();
    // What reached the pipe came in pieces a pipe takes whole: plain 'x's.
    EXPECT_EQ(::fcntl(read_end.get(), F_SETFL, O_NONBLOCK), 0);
    const std::string got = test::read_all(read_end.get());
    EXPECT_GT(got.size(), 0u);
    EXPECT_EQ(got.find_first_not_of('x'), std::string::npos);
}

TEST(StdioRelay, AFailureOnTheRelayThreadFailsStart) {
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    StdioRelayConfig c;
    c.listener = std::move(listener);
    c.is_guest = [](const sockaddr_storage&, socklen_t) { return true; };
    c.on_exit = [](int) {};
    c.on_thread_start = [] { return Result<>(fail("no filter")); };
    auto r = StdioRelay::start(std::move(c));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "no filter");
}

// The sandbox accepts the guest's connections but can make no socket of its own, and only
// the supervisor can claim a guest CID.
// Sockets the sandbox serves (stdio, the control API) are made by the supervisor.
TEST(StdioRelay, NoRunnerThreadCanCreateASocketOrClaimACid) {
    const auto profiles = runner_seccomp_profiles(policy::default_policy());
    ASSERT_EQ(profiles.size(), 7u)
        << "vcpu, event-loop, stdio-relay, api, host-output, device-io, lazy-memory";
    for (const auto& p : profiles) {
        const auto names = p.allowed_syscalls();
        for (const char* call : {"socket", "connect", "bind", "listen", "setsockopt"})
            EXPECT_EQ(std::count(names.begin(), names.end(), call), 0) << p.name() << ": " << call;
        for (const auto& ioctl : p.allowed_ioctls())
            EXPECT_NE(ioctl.number, VHOST_VSOCK_SET_GUEST_CID) << p.name();
    }
    const auto relay = stdio_relay_seccomp_profile(policy::SeccompMode::kill).allowed_syscalls();
    EXPECT_EQ(std::count(relay.begin(), relay.end(), "accept4"), 1);
    EXPECT_EQ(std::count(relay.begin(), relay.end(), "ioctl"), 0) << "no device control";
    // The watch on a lazy restore's memory loader only reads its lines, closes the
    // userfaultfd and ends the process: no ioctl (nothing done with the userfaultfd itself),
    // no descriptor passing (it has the baseline's memory calls, never executable).
    const auto lazy = lazy_memory_seccomp_profile(policy::SeccompMode::kill).allowed_syscalls();
    for (const char* call : {"ioctl", "sendmsg", "recvmsg", "userfaultfd", "socket"})
        EXPECT_EQ(std::count(lazy.begin(), lazy.end(), call), 0) << call;
    EXPECT_EQ(std::count(lazy.begin(), lazy.end(), "read"), 1);
    EXPECT_EQ(std::count(lazy.begin(), lazy.end(), "exit_group"), 1);
}

}  // namespace
}  // namespace stockade
