#include "runner/vmm/vm_control.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

namespace stockade {

Result<VmControl> VmControl::create() {
    int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return fail_sys("eventfd for the VM control");
    return VmControl(UniqueFd(fd));
}

VmControl::VmControl(VmControl&& o) noexcept
    : efd_(std::move(o.efd_)),
      stopping_(o.stopping_.load()),
      reason_(std::move(o.reason_)),
      deadline_(o.deadline_) {}

void VmControl::stop(StopReason reason) {
    {
        std::lock_guard lock(mu_);
        if (!reason_) reason_ = std::move(reason);
    }
    stopping_.store(true, std::memory_order_release);
    wake();
}

void VmControl::stop_after(StopReason reason, int grace_ms) {
    {
        std::lock_guard lock(mu_);
        if (!reason_) reason_ = std::move(reason);
        if (!deadline_)
            deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    }
    wake();
}

int VmControl::check_deadline() {
    std::lock_guard lock(mu_);
    if (!deadline_ || stopping()) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    *deadline_ - std::chrono::steady_clock::now())
                    .count();
    if (left > 0) return static_cast<int>(left);
    stopping_.store(true, std::memory_order_release);
    return -1;
}

std::optional<StopReason> VmControl::reason() const {
    std::lock_guard lock(mu_);
    return reason_;
}

void VmControl::wake() const {
    std::uint64_t one = 1;
    (void)!::write(efd_.get(), &one, sizeof one);
}

void VmControl::drain() const {
    std::uint64_t v;
    (void)!::read(efd_.get(), &v, sizeof v);
}

int exit_status_of(const StopReason& r) {
    switch (r.kind) {
        case StopKind::workload_exited:
            return r.status;
        case StopKind::signal:
            return r.status;
        default:
            return 125;
    }
}

std::string describe(const StopReason& r) {
    const std::string d = r.detail.empty() ? "" : ": " + r.detail;
    switch (r.kind) {
        case StopKind::workload_exited:
            return "";
        case StopKind::init_failed:
            return "the guest's init could not run the workload" + d;
        case StopKind::guest_reboot:
            return "the guest rebooted before the workload finished" + d;
        case StopKind::guest_poweroff:
            return "the guest powered off before the workload finished" + d;
        case StopKind::guest_panic:
            return "the guest kernel panicked" + d;
        case StopKind::triple_fault:
            return "the guest triple-faulted (KVM shutdown exit)" + d;
        case StopKind::vcpu_error:
            return "a vCPU stopped" + d;
        case StopKind::signal:
            return "stopped by a signal" + d;
        case StopKind::host_error:
            return "host error" + d;
    }
    return "stopped" + d;
}

}  // namespace stockade
