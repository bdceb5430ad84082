#pragma once
// Why and when the VM stops. Any thread (a vCPU seeing a triple fault, a device seeing
// the agent's exit report, the event loop seeing SIGTERM) calls stop(); the first reason
// wins and the event loop is woken through an eventfd.
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade {

enum class StopKind {
    workload_exited,  // status = the workload's exit status
    init_failed,      // stockade-init could not run the workload
    guest_reboot,     // reboot requested in the guest, or an i8042 reset
    guest_poweroff,   // power-off requested in the guest (ACPI S5)
    guest_panic,      // pvpanic
    triple_fault,     // KVM_EXIT_SHUTDOWN
    vcpu_error,       // KVM refused to run a vCPU, or an exit we cannot handle
    signal,           // SIGINT/SIGTERM to stockade; status = 128 + signal
    host_error,       // stockade's own I/O failed
};

struct StopReason {
    StopKind kind;
    int status = 0;
    std::string detail;
};

class VmControl {
  public:
    [[nodiscard]] static Result<VmControl> create();
    VmControl(VmControl&&) noexcept;
    VmControl& operator=(VmControl&&) = delete;

    // Records the reason if it is the first; always wakes the event loop.
    void stop(StopReason reason);
    // Records the reason if it is the first, but lets the guest run on until `grace_ms`
    // passed or another stop() came: a panicking kernel still prints its message.
    void stop_after(StopReason reason, int grace_ms);
    // Milliseconds until a stop_after() deadline (-1: none); stops when it has passed.
    [[nodiscard]] int check_deadline();
    [[nodiscard]] bool stopping() const { return stopping_.load(std::memory_order_acquire); }
    [[nodiscard]] std::optional<StopReason> reason() const;
    // Readable when stop() or wake() was called; read to re-arm.
    [[nodiscard]] int event_fd() const { return efd_.get(); }
    void wake() const;
    void drain() const;

  private:
    explicit VmControl(UniqueFd efd) : efd_(std::move(efd)) {}
    UniqueFd efd_;
    std::atomic<bool> stopping_{false};
    mutable std::mutex mu_;
    std::optional<StopReason> reason_;
    std::optional<std::chrono::steady_clock::time_point> deadline_;
};

// The docker-convention exit status for a stop, and the message to print (empty: none).
[[nodiscard]] int exit_status_of(const StopReason& r);
[[nodiscard]] std::string describe(const StopReason& r);

}  // namespace stockade
