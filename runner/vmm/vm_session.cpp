#include "runner/vmm/vm_session.hpp"

#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
// after sys/socket.h, which it needs
#include <linux/vm_sockets.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>

#include "base/io.hpp"
#include "base/log.hpp"
#include "guest/abi.hpp"
#include "policy/jail.hpp"
#include "policy/privileges.hpp"
#include "policy/selinux_context.hpp"
#include "runner/virtio/blk.hpp"
#include "runner/virtio/net.hpp"
#include "runner/virtio/rng.hpp"
#include "runner/virtio/vsock.hpp"
#include "runner/vmm/event_loop.hpp"
#include "runner/vmm/machine.hpp"
#include "runner/vmm/seccomp_profiles.hpp"
#include "runner/vmm/signals.hpp"
#include "runner/vmm/stdio_relay.hpp"
#include "runner/vmm/vm_control.hpp"

namespace stockade {
namespace {

using Clock = std::chrono::steady_clock;

// Host input waiting in the UART is bounded; stdin is read again when the guest catches up.
constexpr std::size_t kMaxPendingInput = 64u << 10;
constexpr std::size_t kConsoleTail = 64u << 10;

// The last bytes the guest kernel printed, kept to explain an abnormal end.
class ConsoleTail {
  public:
    void append(std::span<const std::uint8_t> data) {
        std::lock_guard lock(mu_);
        buf_.insert(buf_.end(), data.begin(), data.end());
        while (buf_.size() > kConsoleTail)
            buf_.pop_front();
    }
    [[nodiscard]] std::string last_lines(std::size_t n) const {
        std::lock_guard lock(mu_);
        std::string s(buf_.begin(), buf_.end());
        std::size_t pos = s.size();
        for (std::size_t i = 0; i <= n && pos != std::string::npos && pos > 0; ++i)
            pos = s.rfind('\n', pos - 1);
        // An empty console (nothing printed yet) has no line to skip.
        return pos == std::string::npos ? s : s.substr(std::min(pos + 1, s.size()));
    }

  private:
    mutable std::mutex mu_;
    std::deque<char> buf_;
};

// Host stdin to the guest's console, started once stockade-init reports ready. The
// console runs in canonical mode with only VEOF active (guest/abi.hpp), so end of input
// is one VEOF at the start of a line — two when the last line had no newline.
class StdinForwarder {
  public:
    StdinForwarder(Serial& serial, EventLoop& loop) : serial_(serial), loop_(loop) {}

    void start() {
        if (started_) return;
        started_ = true;
        auto r = loop_.add(STDIN_FILENO, EPOLLIN, [this](std::uint32_t) { pump(); });
        if (!r) {
            // Regular files and /dev/null cannot be polled (EPERM); a closed stdin (EBADF)
            // is simply the end of input.
            pollable_ = false;
            if (r.error().code != EPERM) finish();
        }
    }

    // Called on every loop turn: resumes a paused or unpollable stdin.
    void tick() {
        if (!started_ || done_) return;
        if (!pollable_ || (paused_ && serial_.pending_input() < kMaxPendingInput / 2)) {
            if (paused_ && pollable_) {
                paused_ = false;
                (void)loop_.add(STDIN_FILENO, EPOLLIN, [this](std::uint32_t) { pump(); });
            }
            if (!pollable_) pump();
        }
    }

    // How long the loop may sleep: not at all while a file is being copied in.
    [[nodiscard]] int timeout_ms() const {
        if (!started_ || done_) return -1;
        if (paused_ || (!pollable_ && serial_.pending_input() >= kMaxPendingInput)) return 10;
        return pollable_ ? -1 : 0;
    }

  private:
    void pump() {
        if (serial_.pending_input() >= kMaxPendingInput) {
            if (pollable_ && !paused_) {
                paused_ = true;
                loop_.remove(STDIN_FILENO);
            }
            return;
        }
        std::uint8_t buf[4096];
        ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        if (n <= 0) {
            finish();
            return;
        }
        serial_.push_input(std::span(buf, static_cast<std::size_t>(n)));
        line_open_ = buf[n - 1] != '\n';
    }

    void finish() {
        done_ = true;
        if (pollable_) loop_.remove(STDIN_FILENO);
        const std::uint8_t eof[2] = {guest_abi::kEndOfInput, guest_abi::kEndOfInput};
        serial_.push_input(std::span(eof, line_open_ ? 2 : 1));
    }

    Serial& serial_;
    EventLoop& loop_;
    bool started_ = false, pollable_ = true, paused_ = false, done_ = false, line_open_ = false;
};

std::string init_failure_text(std::uint8_t code) {
    switch (static_cast<guest_abi::InitFailure>(code)) {
        case guest_abi::InitFailure::bad_job:
            return "the job archive is missing or malformed";
        case guest_abi::InitFailure::mount:
            return "a mount failed";
        case guest_abi::InitFailure::console:
            return "the console could not be configured";
        case guest_abi::InitFailure::fork:
            return "the workload process could not be created";
        case guest_abi::InitFailure::rootfs:
            return "the root disk could not be mounted";
        case guest_abi::InitFailure::network:
            return "the network interface could not be configured";
    }
    return fmt::format("failure code {}", code);
}

std::int64_t us_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count();
}

// Descriptors this process holds now (from /proc, which the jail later hides).
std::vector<int> open_fds() {
    std::vector<int> fds;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        const int self = ::dirfd(d);
        while (dirent* e = ::readdir(d)) {
            char* end = nullptr;
            const long v = std::strtol(e->d_name, &end, 10);
            if (end != e->d_name && *end == '\0' && v > 2 && v != self)
                fds.push_back(static_cast<int>(v));
        }
        ::closedir(d);
    }
    return fds;
}

// Startup steps 5-7 inside the sandbox process: the jail, the SELinux switch, the
// privilege drop. Returns how long each took (µs) for --stats.
struct HardeningTimes {
    std::int64_t jail = 0, selinux = 0, drop = 0;
};

Result<HardeningTimes> harden(const Hardening& h) {
    HardeningTimes t;
    std::optional<policy::SelinuxSwitch> se;
    if (h.selinux_context) se = STOCKADE_TRY(policy::SelinuxSwitch::prepare(*h.selinux_context));
    // Everything this process holds is the VM's, except what only the supervisor needs.
    std::vector<int> keep;
    for (int fd : open_fds())
        if (std::find(h.close_fds.begin(), h.close_fds.end(), fd) == h.close_fds.end())
            keep.push_back(fd);
    auto start = Clock::now();
    auto jailed = policy::enter_jail(policy::jail_spec(*h.policy, h.jail_root, keep));
    if (!jailed) return std::unexpected(std::move(jailed).error().context("jail"));
    t.jail = us_since(start);
    start = Clock::now();
    if (se) {
        auto switched = se->apply();
        if (!switched) return std::unexpected(std::move(switched).error().context("SELinux"));
    }
    t.selinux = us_since(start);
    start = Clock::now();
    auto dropped = policy::drop_privileges(h.policy->uid, h.policy->gid);
    if (!dropped) return std::unexpected(std::move(dropped).error().context("dropping privileges"));
    t.drop = us_since(start);
    return t;
}

// The network datapath and, for the userspace one, its frame counts (--stats).
std::string describe_net(Machine& machine) {
    for (std::size_t i = 0; i < machine.transport_count(); ++i) {
        auto& dev = machine.transport(i).device();
        if (dev.device_type() != virtio::kTypeNet) continue;
        auto& net = static_cast<virtio::Net&>(dev);
        if (net.uses_vhost()) return "net: vhost-net datapath";
        const auto n = net.counters();
        std::string text =
            fmt::format("net: userspace datapath, frames rx {} tx {}, dropped rx {} tx {}",
                        n.rx_frames, n.tx_frames, n.rx_dropped, n.tx_dropped);
        const auto q = net.queue_counters();
        for (std::size_t k = 0; k < q.size() && k < 2; ++k)
            text += fmt::format("; {} queue: kicks {}, served {}, interrupts {}",
                                k == virtio::kNetRxQueue ? "rx" : "tx", q[k].kicks, q[k].runs,
                                q[k].interrupts);
        return text;
    }
    return "net: none";
}

Result<int> session(Prepared& p, const Hardening& h) {
    const Clock::time_point start = Clock::now();
    std::atomic<std::int64_t> ready_us{-1};
    const SandboxSpec& spec = p.spec;

    auto control = STOCKADE_TRY(VmControl::create());
    std::atomic<bool> guest_ready{false};
    ConsoleTail console;
    // With vsock stdio the workload's streams do not use the console: whatever still
    // reaches its terminal is the console's, so stdout stays exactly the workload's.
    const bool vsock_stdio = p.vsock.has_value();
    Serial::Output output = [&](SerialStream stream, std::span<const std::uint8_t> data) {
        if (stream == SerialStream::terminal && !vsock_stdio) {
            (void)write_all(STDOUT_FILENO, data);  // EPIPE: nobody reads; keep running
        } else {
            console.append(data);
            if (spec.show_console) (void)write_all(STDERR_FILENO, data);
        }
    };
    PlatformEventSink events = [&](const PlatformEvent& e) {
        switch (e.kind) {
            case PlatformEventKind::reset:
                control.stop({StopKind::guest_reboot, 0, "keyboard controller reset"});
                return;
            case PlatformEventKind::poweroff:
                control.stop({StopKind::guest_poweroff, 0, "ACPI S5"});
                return;
            case PlatformEventKind::panic:
                // With panic=-1 the guest resets right after printing; the grace period
                // covers a kernel that hangs instead.
                control.stop_after({StopKind::guest_panic, 0, "reported through pvpanic"}, 2000);
                return;
            case PlatformEventKind::agent:
                break;
        }
        const std::uint8_t arg = guest_abi::arg_of(e.agent_value);
        switch (guest_abi::event_of(e.agent_value)) {
            case guest_abi::Event::ready:
                if (ready_us.load() < 0) ready_us = us_since(start);
                guest_ready = true;
                control.wake();
                return;
            case guest_abi::Event::exited:
                control.stop({StopKind::workload_exited, arg, ""});
                return;
            case guest_abi::Event::init_failed:
                control.stop({StopKind::init_failed, 0, init_failure_text(arg)});
                return;
            case guest_abi::Event::reboot:
                control.stop({StopKind::guest_reboot, 0, "requested in the guest"});
                return;
            case guest_abi::Event::poweroff:
                control.stop({StopKind::guest_poweroff, 0, "requested in the guest"});
                return;
        }
    };

    // The VM, its devices and every descriptor they use (startup step 4).
    auto sigfd = STOCKADE_TRY(watch_termination_signals());
    auto loop = STOCKADE_TRY(EventLoop::create());
    std::vector<std::unique_ptr<virtio::VirtioDevice>> devices;
    std::vector<std::pair<std::string, const virtio::VirtioDevice*>> disks;  // for --stats
    for (std::size_t i = 0; i < p.disks.size(); ++i) {
        auto blk = virtio::Blk::create(std::move(p.disks[i].fd), p.disks[i].read_only,
                                       fmt::format("stockade-vd{}", char('a' + i)));
        if (!blk) return std::unexpected(std::move(blk).error().context(p.disks[i].path));
        disks.emplace_back(fmt::format("vd{}", char('a' + i)), blk->get());
        devices.push_back(std::move(*blk));
    }
    if (spec.rng) devices.push_back(std::make_unique<virtio::Rng>());
    if (p.net) {
        virtio::NetBackend backend{std::move(p.net->tap), p.net->mac.bytes, {}, std::nullopt};
        if (p.net->mtu) backend.mtu = static_cast<std::uint16_t>(*p.net->mtu);
        // VHOST_SET_OWNER: the kernel's worker serves this process's memory from now on.
        if (p.net->vhost)
            backend.vhost =
                STOCKADE_TRY(vhost::VhostDevice::adopt(std::move(p.net->vhost), "/dev/vhost-net"));
        auto net = virtio::Net::create(std::move(backend));
        if (!net) return std::unexpected(std::move(net).error().context("--net"));
        devices.push_back(std::move(*net));
    }
    if (p.vsock) {
        auto vhost =
            STOCKADE_TRY(vhost::VhostDevice::adopt(std::move(p.vsock->vhost), "/dev/vhost-vsock"));
        auto vsock = virtio::Vsock::create(std::move(vhost), p.vsock->cid);
        if (!vsock) return std::unexpected(std::move(vsock).error().context("stdio over vsock"));
        devices.push_back(std::move(*vsock));
    }
    MachineConfig config{spec.vcpus, spec.memory_mib << 20, {spec.huge_pages, -1}, p.cmdline};
    BootImages images{&p.kernel, {p.initrd.bytes(), p.job}};
    auto machine = STOCKADE_TRY(Machine::create(std::move(*p.kvm), config, images,
                                                {std::move(devices), &loop}, output, events));
    // The boot images now live in guest memory.
    release_boot_images(p);
    const auto built_us = us_since(start);

    // Startup steps 5-7, then 8 and 9: each vCPU thread loads its own filter and waits;
    // this thread loads the event loop's; then the vCPUs are released.
    const HardeningTimes hardening = STOCKADE_TRY(harden(h));
    const auto seccomp_start = Clock::now();
    const policy::SeccompProfile vcpu_profile = vcpu_seccomp_profile(h.policy->seccomp_mode);
    const policy::SeccompProfile loop_profile = event_loop_seccomp_profile(h.policy->seccomp_mode);
    const policy::SeccompProfile relay_profile =
        stdio_relay_seccomp_profile(h.policy->seccomp_mode);
    // The relay thread loads its own filter before it touches a guest connection.
    std::unique_ptr<StdioRelay> relay;
    if (p.vsock) {
        const std::uint32_t cid = p.vsock->cid;
        StdioRelayConfig rc;
        rc.listener = std::move(p.vsock->listener);
        rc.is_guest = [cid](const sockaddr_storage& peer, socklen_t len) {
            const auto* vm = reinterpret_cast<const sockaddr_vm*>(&peer);
            return len >= sizeof(sockaddr_vm) && vm->svm_family == AF_VSOCK && vm->svm_cid == cid;
        };
        rc.on_exit = [&control](int status) {
            control.stop({StopKind::workload_exited, status, ""});
        };
        rc.on_thread_start = [&relay_profile] { return relay_profile.load(); };
        relay = STOCKADE_TRY(StdioRelay::start(std::move(rc)));
    }
    STOCKADE_TRY_VOID(
        loop.add(control.event_fd(), EPOLLIN, [&](std::uint32_t) { control.drain(); }));
    STOCKADE_TRY_VOID(loop.add(sigfd.get(), EPOLLIN, [&](std::uint32_t) {
        signalfd_siginfo si{};
        while (::read(sigfd.get(), &si, sizeof si) == sizeof si)
            control.stop({StopKind::signal, 128 + static_cast<int>(si.ssi_signo),
                          ::strsignal(static_cast<int>(si.ssi_signo))});
    }));
    StdinForwarder stdin_fwd(machine->serial(), loop);
    STOCKADE_TRY_VOID(machine->start(control, [&vcpu_profile] { return vcpu_profile.load(); }));
    if (auto r = loop_profile.load(); !r) {
        control.stop({StopKind::host_error, 0, r.error().message});
        machine->stop();
        return std::unexpected(std::move(r).error().context("seccomp"));
    }
    const auto seccomp_us = us_since(seccomp_start);
    machine->release();
    const auto released_us = us_since(start);
    const std::uint64_t loop_cpu_start = this_thread_cpu_ns();

    while (!control.stopping()) {
        if (guest_ready && !vsock_stdio) stdin_fwd.start();
        stdin_fwd.tick();
        const int deadline = control.check_deadline();
        if (control.stopping()) break;
        int timeout = stdin_fwd.timeout_ms();
        if (deadline >= 0 && (timeout < 0 || deadline < timeout)) timeout = deadline;
        if (auto r = loop.run_once(timeout); !r)
            control.stop({StopKind::host_error, 0, r.error().message});
    }
    const std::uint64_t loop_cpu_ns = this_thread_cpu_ns() - loop_cpu_start;
    machine->stop();
    if (relay) relay->stop();
    machine->serial().flush();

    const StopReason reason = *control.reason();
    const std::string message = describe(reason);
    if (!message.empty()) {
        log::error("{}", message);
        // The console explains crashes; a reboot or power-off the workload asked for needs
        // no explanation.
        const bool crash =
            reason.kind == StopKind::guest_panic || reason.kind == StopKind::triple_fault ||
            reason.kind == StopKind::init_failed || reason.kind == StopKind::vcpu_error;
        std::string tail = console.last_lines(40);
        while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back())))
            tail.pop_back();
        if (crash && !tail.empty() && !spec.show_console)
            log::error("last guest console output:\n{}", tail);
    }
    if (spec.print_stats) {
        const ExitCounts c = machine->exit_counts();
        log::write(
            log::Level::info,
            fmt::format("stats: vm built in {:.1f} ms; hardening: jail {:.1f} ms, SELinux "
                        "{:.1f} ms, privilege drop {:.1f} ms, seccomp {:.1f} ms; vCPUs "
                        "released at {:.1f} ms; first exit {:.1f} ms after start; init "
                        "ready at {:.1f} ms; ended at {:.1f} ms; exits: io {}, mmio {}, "
                        "interrupted {}; CPU: vCPUs {:.2f} s, event loop {:.2f} s; guest RAM "
                        "touched {} MiB",
                        built_us / 1e3, hardening.jail / 1e3, hardening.selinux / 1e3,
                        hardening.drop / 1e3, seccomp_us / 1e3, released_us / 1e3,
                        c.first_exit_us / 1e3, ready_us.load() / 1e3, us_since(start) / 1e3, c.io,
                        c.mmio, c.interrupted, c.vcpu_cpu_ns / 1e9, loop_cpu_ns / 1e9,
                        machine->memory().resident_bytes() >> 20));
        for (const auto& [name, dev] : disks)
            log::write(log::Level::info, fmt::format("stats: disk {}: {}", name, dev->stats()));
        if (p.net) log::write(log::Level::info, "stats: " + describe_net(*machine));
        if (relay) {
            const auto io = relay->counters();
            log::write(log::Level::info,
                       fmt::format("stats: stdio over vsock (guest CID {}): in {} B, out {} B, "
                                   "err {} B, connections refused {}",
                                   p.vsock->cid, io.in, io.out, io.err, io.refused));
        }
    }
    return exit_status_of(reason);
}

}  // namespace

int run_vm(Prepared& prepared, const Hardening& hardening) {
    // One malloc arena for every thread: glibc would give each vCPU thread and the stdio
    // relay its own (64 KiB resident each, measured in the lab) for the few allocations
    // they make; small ones go through the per-thread cache without the arena's lock anyway.
    ::mallopt(M_ARENA_MAX, 1);
    auto r = session(prepared, hardening);
    if (!r) {
        log::error("{}", r.error().message);
        return 125;
    }
    return *r;
}

}  // namespace stockade
