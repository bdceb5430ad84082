// The sandbox process: build / harden / start / run / report, each a step of its own.
#include "runner/vmm/sandbox_process.hpp"

#include <dirent.h>
#include <link.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
// after sys/socket.h, which it needs
#include <linux/vm_sockets.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <future>

#include <fmt/ranges.h>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/printable.hpp"
#include "policy/jail.hpp"
#include "policy/privileges.hpp"
#include "policy/selinux_context.hpp"
#include "runner/api/api_server.hpp"
#include "runner/stdio/console_tail.hpp"
#include "runner/stdio/host_output.hpp"
#include "runner/stdio/stdin_forwarder.hpp"
#include "runner/stdio/stdio_relay.hpp"
#include "runner/vmm/device_thread.hpp"
#include "runner/vmm/event_loop.hpp"
#include "runner/vmm/lazy_memory.hpp"
#include "runner/vmm/machine.hpp"
#include "runner/vmm/platform_outcome.hpp"
#include "runner/vmm/sandbox_status.hpp"
#include "runner/vmm/seccomp_profiles.hpp"
#include "runner/vmm/signals.hpp"
#include "runner/vmm/snapshot_io.hpp"
#include "runner/vmm/vm_control.hpp"

namespace stockade {
namespace {

using Clock = std::chrono::steady_clock;

// How much of the guest console an abnormal end shows: the last lines, or for a panic the
// kernel's whole report when it is no longer than this.
constexpr std::size_t kConsoleTailLines = 40;
constexpr std::size_t kMaxPanicReportLines = 200;
// A restored snapshot's state part: far above what 254 vCPUs and 31 functions take.
constexpr std::size_t kMaxRestoredState = 64u << 20;

std::int64_t us_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count();
}

// The set-up's code (ELF and initramfs parsing, building the machine, compiling the
// filters) does not run again once the vCPUs are released: the pages of the executable's
// read-only segments are dropped from this process's page tables (MADV_DONTNEED on clean
// file pages: they stay in the page cache, shared with the supervisor and every other
// sandbox), and what the running sandbox executes faults back in. Writable segments (and
// RELRO, relocated at start) are left alone. Measured in the lab: about 1 MiB less resident
// per sandbox process (docs/lab-notes.md).
int drop_read_only_segment(dl_phdr_info* info, std::size_t, void*) {
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) != 0) continue;
        const std::uintptr_t from = (info->dlpi_addr + ph.p_vaddr + page - 1) & ~(page - 1);
        const std::uintptr_t to = (info->dlpi_addr + ph.p_vaddr + ph.p_memsz) & ~(page - 1);
        if (to > from) (void)::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
    }
    return 1;  // the executable only: the first object
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

// How long each hardening step took (µs), for --stats.
struct HardeningTimes {
    std::int64_t jail = 0, selinux = 0, drop = 0, seccomp = 0;
};

// The devices built, in slot order, and where --stats finds their counters.
struct BuiltDevices {
    std::vector<std::unique_ptr<virtio::VirtioDevice>> devices;
    std::vector<std::unique_ptr<pci::PassthroughSource>> passthrough;
    std::vector<std::pair<std::string, virtio::VirtioDevice*>> stats;
    BuildContext context;
};

// Every device kind builds its devices from what it was handed.
Result<BuiltDevices> build_devices(DeviceKinds::Handed& handed) {
    BuiltDevices out;
    STOCKADE_TRY_VOID(DeviceKinds::each_until_error([&]<class K>(std::type_identity<K>) {
        auto& part = part_of<K>(handed);
        if (!part) return Result<>{};
        auto built = K::build(std::move(*part), out.context);
        if (!built) return Result<>(std::unexpected(std::move(built).error()));
        for (BuiltDevice& b : *built) {
            if (b.passthrough) {
                out.passthrough.push_back(std::move(b.passthrough));
                continue;
            }
            if (!b.stats_label.empty()) out.stats.emplace_back(b.stats_label, b.device.get());
            out.devices.push_back(std::move(b.device));
        }
        return Result<>{};
    }));
    return out;
}

class Sandbox final : public api::ApiController {
  public:
    Sandbox(SandboxResources resources, const SandboxJail& jail, VmControl control, EventLoop loop,
            UniqueFd sigfd)
        : res_(std::move(resources)),
          jail_(jail),
          control_(std::move(control)),
          loop_(std::move(loop)),
          sigfd_(std::move(sigfd)),
          profiles_(sandbox_seccomp_profiles(res_.policy.seccomp_mode, res_.devices,
                                             res_.spec.terminal)) {}

    ~Sandbox();
    Sandbox(const Sandbox&) = delete;
    Sandbox& operator=(const Sandbox&) = delete;

    Result<> build();   // startup step 4's end: devices and the machine
    Result<> harden();  // steps 5-7: jail, SELinux, privilege drop
    // A restore: the snapshot's state decoded and put into the machine, in the jail and
    // without privileges (its bytes are as untrusted as a guest's), before the vCPU threads
    // start and after the device threads (a restored disk is served on its own from its
    // activation on).
    Result<> restore();
    Result<> start();  // steps 8-9: each thread's filter, then the vCPUs released
    void run();        // the event loop, until something stops the run
    int report();      // the stop's message, the console's tail, --stats; the exit status

    // The control API's view (runner/api/routes.hpp), called on the API thread.
    std::string id() const override { return res_.id; }
    std::string version() const override { return STOCKADE_VERSION; }
    bool paused() const override { return machine_->paused(); }
    Result<> pause() override;
    Result<> resume() override;
    nlohmann::json machine_config() const override;
    nlohmann::json vm_config() const override;
    nlohmann::json metrics() const override;
    Result<> flush_metrics() override;
    Result<> start_workload() override;
    // A restore made to wait (create --restore) that has not been started.
    [[nodiscard]] bool waiting_restore() const { return restored_us_ >= 0 && !started_; }
    Result<> power_off() override;
    Result<> signal_workload(int signal) override;
    Result<> exec(guest_control::ExecRequest request, UniqueFd& client, std::string head,
                  std::string client_input) override;
    Result<nlohmann::json> snapshot(bool leave_paused, std::vector<UniqueFd> parts) override;
    Result<> resize_exec(std::uint32_t id, guest_control::WindowSize size) override;

  private:
    [[nodiscard]] Result<nlohmann::json> write_snapshot(std::span<const UniqueFd> parts);
    // Runs `task` on the event-loop thread (whose filter allows what holding the devices
    // needs) and waits for it; fails when the loop does not get to it (the run is ending).
    [[nodiscard]] Result<> on_loop(std::function<Result<>()> task);
    void run_loop_tasks();
    // The relay, when stockade-init's control stream is there to ask.
    [[nodiscard]] Result<StdioRelay*> control_stream() const;
    // One byte to the supervisor (runner/vmm/sandbox_status.hpp); never blocks.
    void tell_supervisor(SandboxStatus s) const;
    [[nodiscard]] Serial::Output serial_output();
    [[nodiscard]] Result<> start_host_outputs();
    void stop_host_outputs();
    void on_platform_event(const PlatformEvent& e);
    // The guest's init is there (it said so, or a restored guest was): the supervisor hears.
    void mark_ready();
    [[nodiscard]] Result<> start_stdio_relay();
    [[nodiscard]] Result<> start_api();
    [[nodiscard]] Result<> start_device_threads();
    void stop_device_threads();
    [[nodiscard]] Result<> watch_control_and_signals();
    // A terminal's window size: read from stdin (at start and on SIGWINCH, on the event
    // loop's thread, whose filter allows that one ioctl) and sent to the guest's terminal;
    // when its init is not connected yet, start_workload sends it.
    void read_window_size();
    void send_window_size();
    void print_stats() const;
    [[nodiscard]] std::string host_output_stats() const;

    SandboxResources res_;
    const SandboxJail& jail_;
    VmControl control_;
    EventLoop loop_;
    UniqueFd sigfd_;
    SandboxSeccompProfiles profiles_;
    const Clock::time_point start_ = Clock::now();
    std::atomic<std::int64_t> ready_us_{-1};
    std::atomic<bool> guest_ready_{false};
    // The workload runs (false only for a sandbox made with `create`, until start).
    std::atomic<bool> started_{!res_.spec.wait_for_start};
    std::atomic<std::uint32_t> window_{0};  // a terminal's rows << 16 | columns
    std::mutex window_mu_;
    std::mutex start_mu_;  // one start at a time
    std::mutex tasks_mu_;
    std::vector<std::function<void()>> loop_tasks_;
    ConsoleTail console_;
    // The UART's bytes for the host, never written on a vCPU thread: the workload's terminal
    // output to stdout (serial stdio), the console to stderr (--console), each only then.
    std::unique_ptr<HostOutput> terminal_out_, console_out_;
    PrintableLines console_text_;  // the console as --console shows it; under Serial::mu_
    // The devices' own serving threads: outlive the machine, whose devices unwatch their
    // descriptors there when they are reset, but are stopped before it goes (the destructor).
    std::vector<std::unique_ptr<DeviceThread>> device_threads_;
    std::unique_ptr<Machine> machine_;
    std::unique_ptr<LazyMemory> lazy_memory_;  // a lazy sealed restore's, until the process ends
    std::vector<std::pair<std::string, virtio::VirtioDevice*>> device_stats_;
    std::optional<VsockStdio> vsock_stdio_;
    std::unique_ptr<StdioRelay> relay_;
    std::unique_ptr<api::ApiServer> api_;
    std::mutex metrics_mu_;  // one line at a time in the metrics file
    std::uint32_t relay_cid_ = 0;
    std::optional<StdinForwarder> stdin_;
    std::int64_t built_us_ = 0, released_us_ = 0, restored_us_ = -1;
    std::uint64_t loop_cpu_ns_ = 0;
    HardeningTimes hardening_;
};

// Runs on the vCPU thread that wrote the UART, under Serial::mu_: it only copies. The
// workload's terminal output goes out byte-exact; the console, the guest kernel's text for
// the operator, with its control bytes escaped.
Serial::Output Sandbox::serial_output() {
    // With vsock stdio the workload's streams do not use the console: whatever still
    // reaches its terminal is the console's, so stdout stays exactly the workload's.
    const bool vsock_stdio = vsock_stdio_.has_value();
    return [this, vsock_stdio](SerialStream stream, std::span<const std::uint8_t> data) {
        if (stream == SerialStream::terminal && !vsock_stdio) {
            if (terminal_out_) terminal_out_->append(data);
        } else {
            console_.append(data);
            if (console_out_)
                console_out_->append(
                    console_text_.feed({reinterpret_cast<const char*>(data.data()), data.size()}));
        }
    };
}

// Started after the privilege drop (threads inherit it) and before the event loop's filter
// (which makes no thread); each writer loads its own filter first.
Result<> Sandbox::start_host_outputs() {
    auto start_one = [this](int fd) {
        HostOutputConfig c;
        c.fd = fd;
        c.on_thread_start = [this] { return profiles_.host_output.load(); };
        return HostOutput::start(std::move(c));
    };
    if (!vsock_stdio_) terminal_out_ = STOCKADE_TRY(start_one(STDOUT_FILENO));
    if (res_.spec.show_console) console_out_ = STOCKADE_TRY(start_one(STDERR_FILENO));
    return {};
}

// After the vCPUs stopped and the UART's last bytes were handed over: each stream gets what
// a reader that reads takes within its bounds (runner/stdio/host_output.hpp).
void Sandbox::stop_host_outputs() {
    if (console_out_) {
        console_out_->append(console_text_.finish());
        console_out_->stop();
    }
    if (terminal_out_) terminal_out_->stop();
}

void Sandbox::mark_ready() {
    if (ready_us_.load() < 0) ready_us_ = us_since(start_);
    if (!guest_ready_.exchange(true)) tell_supervisor(SandboxStatus::ready);
    control_.wake();
}

void Sandbox::on_platform_event(const PlatformEvent& e) {
    const PlatformOutcome o = outcome_of(e);
    switch (o.action) {
        case PlatformOutcome::Action::none:
            return;
        case PlatformOutcome::Action::ready:
            mark_ready();
            return;
        case PlatformOutcome::Action::stop:
            control_.stop(o.reason);
            return;
        case PlatformOutcome::Action::stop_after_grace:
            control_.stop_after(o.reason, o.grace_ms);
            return;
    }
}

Result<> Sandbox::build() {
    BuiltDevices built = STOCKADE_TRY(build_devices(res_.devices));
    device_stats_ = std::move(built.stats);
    vsock_stdio_ = std::move(built.context.stdio);
    const BootPlan& boot = res_.boot;
    MachineConfig config{res_.spec.vcpus,
                         res_.spec.memory_mib << 20,
                         {res_.spec.huge_pages, -1},
                         boot.cmdline,
                         boot.layout,
                         boot.has_pci,
                         res_.restore_memory.get(),
                         res_.restore_memory_shared,
                         static_cast<bool>(res_.restore_loader)};
    BootImages images{&boot.kernel, {boot.initrd.bytes(), boot.job}};
    machine_ = STOCKADE_TRY(Machine::create(
        *res_.kvm, config, images, {std::move(built.devices), std::move(built.passthrough), &loop_},
        serial_output(), [this](const PlatformEvent& e) { on_platform_event(e); }));
    // The boot images now live in guest memory, and /dev/kvm has made the VM: neither is
    // needed again.
    res_.boot.release();
    res_.kvm.reset();
    res_.restore_memory.reset();  // mapped: the mapping keeps the file
    // A lazy sealed restore: before anything reads guest memory, and with the privilege that
    // a userfaultfd serving KVM's and vhost's faults needs (before the jail).
    if (res_.restore_loader)
        lazy_memory_ =
            STOCKADE_TRY(LazyMemory::attach(machine_->memory(), std::move(res_.restore_loader)));
    built_us_ = us_since(start_);
    return {};
}

Result<> Sandbox::harden() {
    std::optional<policy::SelinuxSwitch> se;
    if (jail_.selinux_context)
        se = STOCKADE_TRY(policy::SelinuxSwitch::prepare(*jail_.selinux_context));
    // Every descriptor open now was handed over by the supervisor or made here for the VM.
    auto t = Clock::now();
    auto jailed = policy::enter_jail(policy::jail_spec(res_.policy, jail_.root, open_fds()));
    if (!jailed) return std::unexpected(std::move(jailed).error().context("jail"));
    hardening_.jail = us_since(t);
    t = Clock::now();
    if (se) {
        auto switched = se->apply();
        if (!switched) return std::unexpected(std::move(switched).error().context("SELinux"));
    }
    hardening_.selinux = us_since(t);
    t = Clock::now();
    auto dropped = policy::drop_privileges(res_.policy.uid, res_.policy.gid);
    if (!dropped) return std::unexpected(std::move(dropped).error().context("dropping privileges"));
    hardening_.drop = us_since(t);
    // The kernel clears the parent-death signal the fork set when credentials change: without
    // this, a supervisor killed with SIGKILL left its sandbox running. Set again, then checked
    // against a supervisor that died in between (its end of the status pipe is gone then).
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return fail_sys("prctl(PR_SET_PDEATHSIG) after dropping privileges");
    if (res_.status_pipe) {
        pollfd p{res_.status_pipe.get(), POLLOUT, 0};
        if (::poll(&p, 1, 0) == 1 && (p.revents & POLLERR)) return fail("the supervisor died");
    }
    return {};
}

Result<> Sandbox::restore() {
    if (!res_.restore_state) return {};
    const auto t = Clock::now();
    std::vector<std::uint8_t> bytes;
    for (;;) {
        std::uint8_t buf[64 * 1024];
        const ssize_t n = ::read(res_.restore_state.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_sys("reading the snapshot's state");
        if (n == 0) break;
        if (bytes.size() + static_cast<std::size_t>(n) > kMaxRestoredState)
            return fail("the snapshot's state is larger than {} bytes", kMaxRestoredState);
        bytes.insert(bytes.end(), buf, buf + n);
    }
    res_.restore_state.reset();
    auto state = decode_machine_state(bytes);
    if (!state) return std::unexpected(std::move(state).error().context("the snapshot's state"));
    auto restored = machine_->restore_state(*state);
    if (!restored) return std::unexpected(std::move(restored).error().context("restoring"));
    restored_us_ = us_since(t);
    return {};
}

Sandbox::~Sandbox() {
    if (machine_) machine_->stop();
    stop_device_threads();
}

// One per device that asks for it (a disk), started like the relay's before this thread's
// filter forbids making threads; each loads the device-io filter first. The devices watch
// their kicks there from their first activation, which a vCPU makes after release.
Result<> Sandbox::start_device_threads() {
    for (std::size_t i = 0; i < machine_->transport_count(); ++i) {
        virtio::VirtioDevice& device = machine_->transport(i).device();
        if (!device.wants_own_thread()) continue;
        auto thread = DeviceThread::start([this] { return profiles_.device_io.load(); });
        if (!thread)
            return std::unexpected(std::move(thread).error().context("virtio-" + device.name()));
        device.serve_on(**thread);
        device_threads_.push_back(std::move(*thread));
    }
    return {};
}

void Sandbox::stop_device_threads() {
    for (auto& t : device_threads_)
        t->stop();
}

Result<> Sandbox::start_stdio_relay() {
    if (!vsock_stdio_) return {};
    const std::uint32_t cid = relay_cid_ = vsock_stdio_->cid;
    StdioRelayConfig rc;
    rc.listener = std::move(vsock_stdio_->listener);
    rc.is_guest = [cid](const sockaddr_storage& peer, socklen_t len) {
        const auto* vm = reinterpret_cast<const sockaddr_vm*>(&peer);
        return len >= sizeof(sockaddr_vm) && vm->svm_family == AF_VSOCK && vm->svm_cid == cid;
    };
    rc.on_exit = [this](int status) { control_.stop({StopKind::workload_exited, status, ""}); };
    // The relay thread loads its own filter before it touches a guest connection.
    rc.on_thread_start = [this] { return profiles_.stdio_relay.load(); };
    relay_ = STOCKADE_TRY(StdioRelay::start(std::move(rc)));
    return {};
}

Result<> Sandbox::watch_control_and_signals() {
    STOCKADE_TRY_VOID(loop_.add(control_.event_fd(), EPOLLIN, [this](std::uint32_t) {
        control_.drain();
        run_loop_tasks();
    }));
    return loop_.add(sigfd_.get(), EPOLLIN, [this](std::uint32_t) {
        signalfd_siginfo si{};
        while (::read(sigfd_.get(), &si, sizeof si) == sizeof si)
            if (si.ssi_signo == SIGWINCH) {
                read_window_size();
                send_window_size();
            } else
                control_.stop({StopKind::signal, 128 + static_cast<int>(si.ssi_signo),
                               ::strsignal(static_cast<int>(si.ssi_signo))});
    });
}

void Sandbox::read_window_size() {
    winsize ws{};
    if (res_.spec.terminal && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
        window_ = std::uint32_t{ws.ws_row} << 16 | ws.ws_col;
}

void Sandbox::send_window_size() {
    if (!res_.spec.terminal || !relay_ || !relay_->control_connected()) return;
    // One at a time, the size read under the lock: a start (API thread) and a resize (event
    // loop) at once never leave the older size last.
    std::lock_guard lock(window_mu_);
    guest_control::Message m{guest_control::MessageType::resize, 0, std::nullopt};
    const std::uint32_t w = window_;
    m.window = {static_cast<std::uint16_t>(w >> 16), static_cast<std::uint16_t>(w & 0xffff)};
    (void)relay_->send_control(m);
}

Result<> Sandbox::start() {
    const auto t = Clock::now();
    read_window_size();
    // The host outputs first: the API thread reads their counters.
    STOCKADE_TRY_VOID(start_host_outputs());
    STOCKADE_TRY_VOID(start_stdio_relay());
    STOCKADE_TRY_VOID(start_api());
    STOCKADE_TRY_VOID(start_device_threads());
    if (lazy_memory_)
        STOCKADE_TRY_VOID(lazy_memory_->watch([this] { return profiles_.lazy_memory.load(); }));
    STOCKADE_TRY_VOID(restore());
    STOCKADE_TRY_VOID(watch_control_and_signals());
    stdin_.emplace(machine_->serial(), loop_);
    // A restore that waits for `start` (create --restore): its vCPUs park before their first
    // instruction.
    if (waiting_restore()) STOCKADE_TRY_VOID(machine_->start_paused());
    // Each vCPU thread loads its filter and waits; this thread then loads the event loop's.
    STOCKADE_TRY_VOID(machine_->start(control_, [this] { return profiles_.vcpu.load(); }));
    if (auto r = profiles_.event_loop.load(); !r) {
        control_.stop({StopKind::host_error, 0, r.error().message});
        machine_->stop();
        return std::unexpected(std::move(r).error().context("seccomp"));
    }
    hardening_.seccomp = us_since(t);
    ::dl_iterate_phdr(drop_read_only_segment, nullptr);
    machine_->release();
    released_us_ = us_since(start_);
    // A restored guest was ready when it was saved (only a ready sandbox is snapshotted), and
    // its init does not say so again.
    if (restored_us_ >= 0) mark_ready();
    return {};
}

// The control API's thread, started (like the relay's) before this thread's own filter
// forbids making threads; it loads its own filter first.
Result<> Sandbox::start_api() {
    if (!res_.api_listener) return {};
    api_ = STOCKADE_TRY(api::ApiServer::start(
        {std::move(res_.api_listener), this, [this] { return profiles_.api.load(); }}));
    return {};
}

void Sandbox::tell_supervisor(SandboxStatus s) const {
    if (!res_.status_pipe) return;
    const char c = static_cast<char>(s);
    (void)!::write(res_.status_pipe.get(), &c, 1);  // non-blocking; a full pipe loses nothing
                                                    // that matters more than the run
}

Result<> Sandbox::on_loop(std::function<Result<>()> task) {
    auto done = std::make_shared<std::promise<Result<>>>();
    auto result = done->get_future();
    {
        std::lock_guard lock(tasks_mu_);
        loop_tasks_.push_back([done, task = std::move(task)] { done->set_value(task()); });
    }
    control_.wake();
    if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
        return fail("the sandbox is stopping");
    return result.get();
}

void Sandbox::run_loop_tasks() {
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lock(tasks_mu_);
        tasks.swap(loop_tasks_);
    }
    for (auto& t : tasks)
        t();
}

// Paused: the vCPUs parked, then the devices' host side held (vhost workers detached, the
// userspace queues' descriptors not served), so nothing changes guest memory until resume.
Result<> Sandbox::pause() {
    // A restore that waits for `start` has never run: its vCPUs are parked and its devices
    // not held, and `start` only lets the vCPUs go.
    if (waiting_restore()) return fail("the sandbox waits for `stockade start`: it has not run");
    STOCKADE_TRY_VOID(machine_->pause());
    auto held = on_loop([this]() -> Result<> {
        STOCKADE_TRY_VOID(loop_.hold_watched(true));
        machine_->hold_devices(true);
        return {};
    });
    if (!held) {
        (void)machine_->resume();
        return held;
    }
    tell_supervisor(SandboxStatus::paused);
    return {};
}

Result<> Sandbox::resume() {
    if (waiting_restore()) return start_workload();  // Firecracker's load, then resume
    if (!machine_->paused()) return {};
    STOCKADE_TRY_VOID(on_loop([this]() -> Result<> {
        machine_->hold_devices(false);
        return loop_.hold_watched(false);
    }));
    STOCKADE_TRY_VOID(machine_->resume());
    tell_supervisor(SandboxStatus::resumed);
    return {};
}

Result<StdioRelay*> Sandbox::control_stream() const {
    if (!relay_) return fail("this sandbox has no vsock stdio, so no control stream to its guest");
    if (guest_ready_ && relay_->control_connected()) return relay_.get();
    if (relay_->control_ended()) return fail("the guest's init has closed its control stream");
    // Not connected, and it cannot connect until someone else acts: no use asking again.
    if (waiting_restore()) return fail("the sandbox waits for `stockade start`: it has not run");
    if (machine_->paused()) return fail("the sandbox is paused: resume it first");
    // Booting, or a restored guest's init not reconnected yet: EAGAIN, which the API answers
    // with 503 and the CLI's exec waits out.
    return std::unexpected(
        Error{"the guest's init is not connected yet (booting, or reconnecting after a restore)",
              EAGAIN});
}

Result<> Sandbox::start_workload() {
    std::lock_guard lock(start_mu_);
    if (started_) return fail("the workload has already started");
    if (restored_us_ >= 0) {
        // A restore that waited: its workload is where the snapshot left it; it goes on
        // when the vCPUs run (its devices were never held).
        STOCKADE_TRY_VOID(machine_->resume());
        started_ = true;
        tell_supervisor(SandboxStatus::started);
        return {};
    }
    StdioRelay* relay = STOCKADE_TRY(control_stream());
    send_window_size();  // before the workload can ask for it
    STOCKADE_TRY_VOID(relay->send_control({guest_control::MessageType::start, 0, std::nullopt}));
    started_ = true;
    tell_supervisor(SandboxStatus::started);
    return {};
}

Result<> Sandbox::power_off() {
    if (waiting_restore()) {  // nothing in it has run: its init cannot be asked
        control_.stop({StopKind::guest_poweroff, 0, "stopped before `stockade start`"});
        return {};
    }
    StdioRelay* relay = STOCKADE_TRY(control_stream());
    if (machine_->paused()) return fail("the sandbox is paused: resume it first");
    return relay->send_control({guest_control::MessageType::poweroff, 0, std::nullopt});
}

Result<> Sandbox::signal_workload(int signal) {
    if (!started_) return fail("the workload has not started (stockade start)");
    StdioRelay* relay = STOCKADE_TRY(control_stream());
    return relay->send_control({guest_control::MessageType::signal, signal, std::nullopt});
}

Result<> Sandbox::exec(guest_control::ExecRequest request, UniqueFd& client, std::string head,
                       std::string client_input) {
    StdioRelay* relay = STOCKADE_TRY(control_stream());
    if (machine_->paused()) return fail("the sandbox is paused: resume it first");
    return relay->start_exec(std::move(request), client, std::move(head), std::move(client_input));
}

Result<> Sandbox::resize_exec(std::uint32_t id, guest_control::WindowSize size) {
    StdioRelay* relay = STOCKADE_TRY(control_stream());
    return relay->resize_exec(id, size);
}

// The parts' descriptors (pipes): state, memory, then one per writable disk (in disk order).
Result<nlohmann::json> Sandbox::snapshot(bool leave_paused, std::vector<UniqueFd> parts) {
    const auto t = Clock::now();
    const bool was_paused = machine_->paused();
    if (!was_paused) STOCKADE_TRY_VOID(pause());
    const std::int64_t paused_us = us_since(t);
    auto written = write_snapshot(parts);
    parts.clear();  // closed before the answer: the client renames what is complete
    const std::int64_t saved_us = us_since(t);
    if (!was_paused && !leave_paused) {
        if (auto r = resume(); !r) {
            if (written) return std::unexpected(std::move(r).error().context("resuming"));
            log::warn("resuming after a failed snapshot: {}", r.error().message);
        }
    }
    if (!written) return written;
    (*written)["timings_us"] = {{"pause", paused_us},
                                {"save", saved_us - paused_us},
                                {"paused_total", was_paused || leave_paused ? -1 : us_since(t)}};
    (*written)["paused"] = machine_->paused();
    (*written)["was_paused"] = was_paused;
    return written;
}

// Everything goes into the pipes the client sent, in order; the sandbox holds no snapshot
// file (its client writes them) and opens nothing.
Result<nlohmann::json> Sandbox::write_snapshot(std::span<const UniqueFd> parts) {
    std::vector<virtio::VirtioDevice::SnapshotDisk> disks;
    for (std::size_t i = 0; i < machine_->transport_count(); ++i)
        if (auto d = machine_->transport(i).device().snapshot_disk()) disks.push_back(*d);
    if (parts.size() != 2 + disks.size())
        return fail(
            "a snapshot of this sandbox takes {} descriptors (state, memory and {} "
            "writable disks), not {}",
            2 + disks.size(), disks.size(), parts.size());
    const MachineState state = STOCKADE_TRY(machine_->capture_state());
    const std::vector<std::uint8_t> bytes = encode_machine_state(state);
    STOCKADE_TRY_VOID(write_all(parts[0].get(), bytes));
    const WrittenBytes memory =
        STOCKADE_TRY(write_guest_memory(machine_->memory(), parts[1].get(), false));
    nlohmann::json disk_parts = nlohmann::json::array();
    for (std::size_t i = 0; i < disks.size(); ++i) {
        STOCKADE_TRY_VOID(stream_disk(disks[i].fd, disks[i].size, parts[2 + i].get()));
        disk_parts.push_back({{"bytes", disks[i].size}});
    }
    return nlohmann::json{{"state_bytes", bytes.size()},
                          {"memory_bytes", memory.size},
                          {"vcpus", state.vcpus.size()},
                          {"disks", std::move(disk_parts)}};
}

nlohmann::json Sandbox::machine_config() const {
    return {{"vcpu_count", res_.spec.vcpus},
            {"mem_size_mib", res_.spec.memory_mib},
            {"smt", false},
            {"track_dirty_pages", false},
            {"huge_pages", res_.spec.huge_pages == HugePages::off ? "None" : "2M"}};
}

nlohmann::json Sandbox::vm_config() const {
    return {{"boot-source",
             {{"kernel_image_path", res_.spec.kernel},
              {"initrd_path", res_.spec.initrd},
              {"boot_args", res_.boot.cmdline}}},
            {"machine-config", machine_config()}};
}

Result<> Sandbox::flush_metrics() {
    if (!res_.metrics_file) return fail("no metrics file: start the sandbox with --metrics-path");
    std::lock_guard lock(metrics_mu_);
    return write_all(res_.metrics_file.get(), api::to_json_text(metrics()) + "\n");
}

nlohmann::json Sandbox::metrics() const {
    const ExitCounts c = machine_->exit_counts();
    nlohmann::json devices = nlohmann::json::object();
    for (const auto& [label, dev] : device_stats_)
        devices[label] = dev->stats();
    nlohmann::json m{{"vcpu",
                      {{"exit_io", c.io},
                       {"exit_mmio", c.mmio},
                       {"exit_interrupted", c.interrupted},
                       {"exit_other", c.other}}},
                     {"devices", std::move(devices)},
                     {"uptime_ms", us_since(start_) / 1000}};
    if (relay_) {
        const auto io = relay_->counters();
        m["stdio"] = {{"in_bytes", io.in},
                      {"out_bytes", io.out},
                      {"err_bytes", io.err},
                      {"execs", io.execs},
                      {"connections_refused", io.refused}};
    }
    auto out = [](const HostOutput& o) {
        const HostOutputCounters n = o.counters();
        return nlohmann::json{{"written_bytes", n.written}, {"dropped_bytes", n.dropped}};
    };
    if (terminal_out_) m["serial_output"]["terminal"] = out(*terminal_out_);
    if (console_out_) m["serial_output"]["console"] = out(*console_out_);
    return m;
}

void Sandbox::run() {
    const std::uint64_t cpu_start = this_thread_cpu_ns();
    while (!control_.stopping()) {
        if (guest_ready_ && !vsock_stdio_) stdin_->start();
        stdin_->tick();
        const int deadline = control_.check_deadline();
        if (control_.stopping()) break;
        int timeout = stdin_->timeout_ms();
        if (deadline >= 0 && (timeout < 0 || deadline < timeout)) timeout = deadline;
        if (auto r = loop_.run_once(timeout); !r)
            control_.stop({StopKind::host_error, 0, r.error().message});
    }
    loop_cpu_ns_ = this_thread_cpu_ns() - cpu_start;
    api_.reset();  // before the machine stops: a pause in progress sees the stop and returns
    machine_->stop();
    stop_device_threads();
    if (relay_) relay_->stop();
    machine_->serial().flush();
    stop_host_outputs();
}

int Sandbox::report() {
    // The last line of the metrics file: the run's totals.
    if (res_.metrics_file)
        if (auto r = flush_metrics(); !r) log::warn("--metrics-path: {}", r.error().message);
    const StopReason reason = *control_.reason();
    const std::string message = describe(reason);
    if (!message.empty()) {
        log::error("{}", message);
        // The console explains crashes; a reboot or power-off the workload asked for needs
        // no explanation.
        const bool crash =
            reason.kind == StopKind::guest_panic || reason.kind == StopKind::triple_fault ||
            reason.kind == StopKind::init_failed || reason.kind == StopKind::vcpu_error;
        std::string tail;
        if (reason.kind == StopKind::guest_panic)
            tail = console_.from_last("Kernel panic - not syncing", kMaxPanicReportLines);
        if (tail.empty()) tail = console_.last_lines(kConsoleTailLines);
        while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back())))
            tail.pop_back();
        if (crash && !tail.empty() && !res_.spec.show_console)
            log::error("last guest console output:\n{}", printable_lines(tail));
    }
    if (res_.spec.print_stats) print_stats();
    return exit_status_of(reason);
}

void Sandbox::print_stats() const {
    const ExitCounts c = machine_->exit_counts();
    const HardeningTimes& h = hardening_;
    // Before this process: the supervisor's preparation (whose boot-image reading is most of
    // it when the images are large) and its host set-up.
    if (res_.prepare_started != Clock::time_point{})
        log::write(
            log::Level::info,
            fmt::format(
                "stats: supervisor: boot images read and checked in {:.1f} ms; "
                "sandbox process started {:.1f} ms after preparation began",
                res_.images_read_us / 1e3,
                std::chrono::duration<double, std::milli>(start_ - res_.prepare_started).count()));
    log::write(
        log::Level::info,
        fmt::format("stats: vm built in {:.1f} ms; hardening: jail {:.1f} ms, SELinux "
                    "{:.1f} ms, privilege drop {:.1f} ms, seccomp {:.1f} ms; {}vCPUs "
                    "released at {:.1f} ms; first exit {:.1f} ms after start; init "
                    "ready at {:.1f} ms; ended at {:.1f} ms; exits: io {}, mmio {}, "
                    "interrupted {}; CPU: vCPUs {:.2f} s, event loop {:.2f} s; guest RAM "
                    "touched {} MiB",
                    built_us_ / 1e3, h.jail / 1e3, h.selinux / 1e3, h.drop / 1e3, h.seccomp / 1e3,
                    restored_us_ < 0
                        ? std::string()
                        : fmt::format("snapshot state restored in {:.1f} ms; ", restored_us_ / 1e3),
                    released_us_ / 1e3, c.first_exit_us / 1e3, ready_us_.load() / 1e3,
                    us_since(start_) / 1e3, c.io, c.mmio, c.interrupted, c.vcpu_cpu_ns / 1e9,
                    loop_cpu_ns_ / 1e9, machine_->memory().resident_bytes() >> 20));
    for (const auto& [label, dev] : device_stats_)
        log::write(log::Level::info, fmt::format("stats: {}: {}", label, dev->stats()));
    if (lazy_memory_) {
        const auto d = lazy_memory_->completed();
        log::write(log::Level::info,
                   d ? fmt::format("stats: sealed memory loaded lazily: {} chunks on first touch, "
                                   "{} in the background ({} of them zeros), complete {} ms "
                                   "after its loader was ready",
                                   d->faulted, d->background, d->zero, d->ms)
                     : std::string("stats: sealed memory loaded lazily: not complete yet"));
    }
    log::write(log::Level::info, fmt::format("stats: {}", machine_->warnings_report()));
    if (relay_) {
        const auto io = relay_->counters();
        log::write(log::Level::info,
                   fmt::format("stats: stdio over vsock (guest CID {}): in {} B, out {} B, "
                               "err {} B, connections refused {}",
                               relay_cid_, io.in, io.out, io.err, io.refused));
    }
    if (terminal_out_ || console_out_)
        log::write(log::Level::info, "stats: " + host_output_stats());
}

std::string Sandbox::host_output_stats() const {
    std::vector<std::string> parts;
    if (terminal_out_) {
        const auto c = terminal_out_->counters();
        parts.push_back(fmt::format("terminal to stdout {} B, dropped {} B", c.written, c.dropped));
    }
    if (console_out_) {
        const auto c = console_out_->counters();
        parts.push_back(fmt::format("console to stderr {} B, dropped {} B", c.written, c.dropped));
    }
    return fmt::format("serial output: {}", fmt::join(parts, "; "));
}

// A sandbox with a terminal (SandboxSpec::terminal) makes its stdin, the terminal, its
// controlling terminal in a session of its own: the kernel then tells it of window size
// changes (SIGWINCH), which its guest's terminal follows. Without that the terminal still
// works, at its first size.
void take_terminal(const SandboxSpec& spec) {
    if (!spec.terminal) return;
    if (::setsid() < 0 || ::ioctl(STDIN_FILENO, TIOCSCTTY, 0) != 0)
        log::warn("the terminal's window size will not follow: {}", std::strerror(errno));
}

Result<int> run_sandbox(SandboxResources resources, const SandboxJail& jail) {
    auto control = STOCKADE_TRY(VmControl::create());
    take_terminal(resources.spec);
    auto sigfd = STOCKADE_TRY(watch_termination_signals(resources.spec.terminal));
    auto loop = STOCKADE_TRY(EventLoop::create());
    auto sandbox = std::make_unique<Sandbox>(std::move(resources), jail, std::move(control),
                                             std::move(loop), std::move(sigfd));
    STOCKADE_TRY_VOID(sandbox->build());
    STOCKADE_TRY_VOID(sandbox->harden());
    STOCKADE_TRY_VOID(sandbox->start());
    sandbox->run();
    return sandbox->report();
}

}  // namespace

int run_sandbox_process(SandboxResources resources, const SandboxJail& jail) {
    // Descriptors reach the sandbox by an allowlist: whatever else it inherited from the
    // supervisor (the cgroup leaf, its signalfd, the MCS reservation) is closed first.
    std::vector<int> keep = resources.fds();
    if (log::output_fd() != STDERR_FILENO) keep.push_back(log::output_fd());  // --log-path
    close_fds_except(keep);
    // One malloc arena for every thread: glibc would give each vCPU thread and the stdio
    // relay its own (64 KiB resident each, measured in the lab) for the few allocations
    // they make; small ones go through the per-thread cache without the arena's lock anyway.
    ::mallopt(M_ARENA_MAX, 1);
    auto r = run_sandbox(std::move(resources), jail);
    if (!r) {
        log::error("{}", r.error().message);
        return 125;
    }
    return *r;
}

}  // namespace stockade
