#include "runner/vmm/vm_control.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "base/table.hpp"

namespace stockade {
namespace {

// What describe() says for each kind of stop (a workload that exited needs no message).
constexpr NamedValue<StopKind> kStopTexts[] = {
    {StopKind::init_failed, "the guest's init could not run the workload"},
    {StopKind::guest_reboot, "the guest rebooted before the workload finished"},
    {StopKind::guest_poweroff, "the guest powered off before the workload finished"},
    {StopKind::guest_panic, "the guest kernel panicked"},
    {StopKind::triple_fault, "the guest triple-faulted (KVM shutdown exit)"},
    {StopKind::vcpu_error, "a vCPU stopped"},
    {StopKind::signal, "stopped by a signal"},
    {StopKind::host_error, "host error"},
};

}  // namespace

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
    const bool own_status = r.kind == StopKind::workload_exited || r.kind == StopKind::signal;
    return own_status ? r.status : 125;
}

std::string describe(const StopReason& r) {
    if (r.kind == StopKind::workload_exited) return "";
    std::string text(name_of(kStopTexts, r.kind, "stopped"));
    if (!r.detail.empty()) text += ": " + r.detail;
    return text;
}

}  // namespace stockade
