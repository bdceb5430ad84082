#include "runner/kvm/vm.hpp"

#include <sys/ioctl.h>

#include "base/flex_buffer.hpp"

namespace stockade::kvm {

Result<Vm> Vm::create(const Kvm& kvm) {
    int fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);
    if (fd < 0) return fail_sys("KVM_CREATE_VM");
    return Vm(UniqueFd(fd));
}

Result<> Vm::set_user_memory_region(std::uint32_t slot, std::uint64_t guest_phys,
                                    std::uint64_t size, void* host, std::uint32_t flags) {
    kvm_userspace_memory_region r{};
    r.slot = slot;
    r.flags = flags;
    r.guest_phys_addr = guest_phys;
    r.memory_size = size;
    r.userspace_addr = reinterpret_cast<std::uint64_t>(host);
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) != 0)
        return fail_sys(fmt::format("KVM_SET_USER_MEMORY_REGION slot {} ({} MiB at {:#x})", slot,
                                    size >> 20, guest_phys));
    return {};
}

Result<> Vm::set_tss_addr(std::uint64_t addr) {
    if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) != 0)
        return fail_sys(fmt::format("KVM_SET_TSS_ADDR {:#x}", addr));
    return {};
}

Result<> Vm::set_identity_map_addr(std::uint64_t addr) {
    std::uint64_t a = addr;
    if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &a) != 0)
        return fail_sys(fmt::format("KVM_SET_IDENTITY_MAP_ADDR {:#x}", addr));
    return {};
}

Result<> Vm::create_irqchip() {
    if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) != 0) return fail_sys("KVM_CREATE_IRQCHIP");
    return {};
}

Result<> Vm::create_pit2() {
    kvm_pit_config c{};
    c.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 answered in the kernel, no exit
    if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &c) != 0) return fail_sys("KVM_CREATE_PIT2");
    return {};
}

Result<> Vm::irq_line(std::uint32_t irq, bool level) {
    kvm_irq_level l{};
    l.irq = irq;
    l.level = level ? 1 : 0;
    if (::ioctl(fd_.get(), KVM_IRQ_LINE, &l) != 0)
        return fail_sys(fmt::format("KVM_IRQ_LINE irq {} level {}", irq, l.level));
    return {};
}

Result<> Vm::set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) {
    FlexBuffer<kvm_irq_routing, kvm_irq_routing_entry> r(entries);
    r->nr = static_cast<std::uint32_t>(entries.size());
    if (::ioctl(fd_.get(), KVM_SET_GSI_ROUTING, r.get()) != 0)
        return fail_sys(fmt::format("KVM_SET_GSI_ROUTING ({} entries)", entries.size()));
    return {};
}

Result<> Vm::irqfd(int event_fd, std::uint32_t gsi, bool assign) {
    kvm_irqfd f{};
    f.fd = static_cast<std::uint32_t>(event_fd);
    f.gsi = gsi;
    f.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN;
    if (::ioctl(fd_.get(), KVM_IRQFD, &f) != 0)
        return fail_sys(fmt::format("KVM_IRQFD gsi {} fd {}", gsi, event_fd));
    return {};
}

Result<> Vm::ioeventfd(int event_fd, std::uint64_t addr, std::uint32_t len, bool pio, bool assign) {
    kvm_ioeventfd e{};
    e.addr = addr;
    e.len = len;
    e.fd = event_fd;
    e.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN);
    if (::ioctl(fd_.get(), KVM_IOEVENTFD, &e) != 0)
        return fail_sys(fmt::format("KVM_IOEVENTFD {} {:#x}+{}", pio ? "port" : "mmio", addr, len));
    return {};
}

Result<> Vm::set_clock(std::uint64_t ns) {
    kvm_clock_data c{};
    c.clock = ns;
    if (::ioctl(fd_.get(), KVM_SET_CLOCK, &c) != 0) return fail_sys("KVM_SET_CLOCK");
    return {};
}

Result<kvm_clock_data> Vm::get_clock() const {
    kvm_clock_data c{};
    if (::ioctl(fd_.get(), KVM_GET_CLOCK, &c) != 0) return fail_sys("KVM_GET_CLOCK");
    return c;
}

Result<kvm_irqchip> Vm::irqchip(std::uint32_t chip) const {
    kvm_irqchip c{};
    c.chip_id = chip;
    if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &c) != 0)
        return fail_sys(fmt::format("KVM_GET_IRQCHIP {}", chip));
    return c;
}

Result<> Vm::set_irqchip(const kvm_irqchip& c) {
    if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &c) != 0)
        return fail_sys(fmt::format("KVM_SET_IRQCHIP {}", c.chip_id));
    return {};
}

Result<kvm_pit_state2> Vm::pit2() const {
    kvm_pit_state2 p{};
    if (::ioctl(fd_.get(), KVM_GET_PIT2, &p) != 0) return fail_sys("KVM_GET_PIT2");
    return p;
}

Result<> Vm::set_pit2(const kvm_pit_state2& p) {
    if (::ioctl(fd_.get(), KVM_SET_PIT2, &p) != 0) return fail_sys("KVM_SET_PIT2");
    return {};
}

}  // namespace stockade::kvm
