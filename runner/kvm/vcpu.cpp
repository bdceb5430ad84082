#include "runner/kvm/vcpu.hpp"

#include <sys/ioctl.h>

#include "base/flex_buffer.hpp"

namespace stockade::kvm {

Result<Vcpu> Vcpu::create(Vm& vm, std::uint32_t id, std::size_t mmap_size) {
    if (mmap_size < sizeof(kvm_run))
        return fail("vCPU {}: kvm_run size {} too small", id, mmap_size);
    int fd = ::ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
    if (fd < 0) return fail_sys(fmt::format("KVM_CREATE_VCPU {}", id));
    UniqueFd owned(fd);
    auto map = STOCKADE_TRY(Mapping::of_fd(fd, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED));
    return Vcpu(std::move(owned), std::move(map), id);
}

Result<std::uint32_t> Vcpu::run() {
    if (::ioctl(fd_.get(), KVM_RUN, 0) != 0) {
        if (errno == EINTR || errno == EAGAIN) return KVM_EXIT_INTR;
        return fail_sys(fmt::format("KVM_RUN vCPU {}", id_));
    }
    return run_->exit_reason;
}

Result<> Vcpu::settle() {
    const std::uint8_t was = run_->immediate_exit;
    run_->immediate_exit = 1;
    const int r = ::ioctl(fd_.get(), KVM_RUN, 0);
    const int err = errno;
    run_->immediate_exit = was;
    if (r == 0 || err == EINTR) return {};
    errno = err;
    return fail_sys(fmt::format("KVM_RUN (settling) vCPU {}", id_));
}

Result<PioAccess> Vcpu::pio() const {
    const auto& io = run_->io;
    if (io.size != 1 && io.size != 2 && io.size != 4)
        return fail("vCPU {}: port I/O of size {}", id_, io.size);
    std::uint64_t bytes = std::uint64_t{io.size} * io.count;
    if (io.data_offset < sizeof(kvm_run) || io.data_offset > run_map_.size() ||
        bytes > run_map_.size() - io.data_offset)
        return fail("vCPU {}: port I/O data ({} bytes at {}) outside kvm_run", id_, bytes,
                    io.data_offset);
    return PioAccess{io.port, io.direction == KVM_EXIT_IO_OUT, io.size, io.count,
                     run_map_.bytes().subspan(io.data_offset, bytes)};
}

Result<MmioAccess> Vcpu::mmio() const {
    auto& m = run_->mmio;
    if (m.len == 0 || m.len > sizeof m.data) return fail("vCPU {}: MMIO of length {}", id_, m.len);
    return MmioAccess{m.phys_addr, m.is_write != 0, std::span(m.data, m.len)};
}

#define STOCKADE_GET(type, req, what)                                                            \
    type v{};                                                                                    \
    if (::ioctl(fd_.get(), req, &v) != 0) return fail_sys(fmt::format("{} vCPU {}", what, id_)); \
    return v

#define STOCKADE_SET(req, what, arg)                                                              \
    if (::ioctl(fd_.get(), req, arg) != 0) return fail_sys(fmt::format("{} vCPU {}", what, id_)); \
    return {}

Result<kvm_regs> Vcpu::regs() const {
    STOCKADE_GET(kvm_regs, KVM_GET_REGS, "KVM_GET_REGS");
}
Result<> Vcpu::set_regs(const kvm_regs& r) {
    STOCKADE_SET(KVM_SET_REGS, "KVM_SET_REGS", &r);
}
Result<kvm_sregs> Vcpu::sregs() const {
    STOCKADE_GET(kvm_sregs, KVM_GET_SREGS, "KVM_GET_SREGS");
}
Result<> Vcpu::set_sregs(const kvm_sregs& s) {
    STOCKADE_SET(KVM_SET_SREGS, "KVM_SET_SREGS", &s);
}
Result<> Vcpu::set_fpu(const kvm_fpu& f) {
    STOCKADE_SET(KVM_SET_FPU, "KVM_SET_FPU", &f);
}
Result<kvm_lapic_state> Vcpu::lapic() const {
    STOCKADE_GET(kvm_lapic_state, KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
Result<> Vcpu::set_lapic(const kvm_lapic_state& l) {
    STOCKADE_SET(KVM_SET_LAPIC, "KVM_SET_LAPIC", &l);
}

Result<> Vcpu::set_mp_state(std::uint32_t state) {
    kvm_mp_state s{state};
    STOCKADE_SET(KVM_SET_MP_STATE, "KVM_SET_MP_STATE", &s);
}

Result<> Vcpu::set_tsc_khz(std::uint32_t khz) {
    if (::ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) != 0)
        return fail_sys(fmt::format("KVM_SET_TSC_KHZ {} vCPU {}", khz, id_));
    return {};
}

Result<std::uint32_t> Vcpu::tsc_khz() const {
    int r = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
    if (r <= 0) return fail_sys(fmt::format("KVM_GET_TSC_KHZ vCPU {}", id_));
    return static_cast<std::uint32_t>(r);
}

Result<std::uint32_t> Vcpu::mp_state() const {
    kvm_mp_state s{};
    if (::ioctl(fd_.get(), KVM_GET_MP_STATE, &s) != 0)
        return fail_sys(fmt::format("KVM_GET_MP_STATE vCPU {}", id_));
    return s.mp_state;
}
Result<kvm_xsave> Vcpu::xsave() const {
    STOCKADE_GET(kvm_xsave, KVM_GET_XSAVE, "KVM_GET_XSAVE");
}
Result<> Vcpu::set_xsave(const kvm_xsave& x) {
    STOCKADE_SET(KVM_SET_XSAVE, "KVM_SET_XSAVE", &x);
}
Result<kvm_xcrs> Vcpu::xcrs() const {
    STOCKADE_GET(kvm_xcrs, KVM_GET_XCRS, "KVM_GET_XCRS");
}
Result<> Vcpu::set_xcrs(const kvm_xcrs& x) {
    STOCKADE_SET(KVM_SET_XCRS, "KVM_SET_XCRS", &x);
}
Result<kvm_vcpu_events> Vcpu::events() const {
    STOCKADE_GET(kvm_vcpu_events, KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Result<> Vcpu::set_events(const kvm_vcpu_events& e) {
    STOCKADE_SET(KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &e);
}
Result<kvm_debugregs> Vcpu::debugregs() const {
    STOCKADE_GET(kvm_debugregs, KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
Result<> Vcpu::set_debugregs(const kvm_debugregs& d) {
    STOCKADE_SET(KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &d);
}

#undef STOCKADE_GET
#undef STOCKADE_SET

Result<std::vector<kvm_msr_entry>> Vcpu::msrs(std::span<const std::uint32_t> indices) const {
    std::vector<kvm_msr_entry> out;
    out.reserve(indices.size());
    while (!indices.empty()) {
        FlexBuffer<kvm_msrs, kvm_msr_entry> m(indices.size());
        m->nmsrs = static_cast<std::uint32_t>(indices.size());
        for (std::size_t i = 0; i < indices.size(); ++i)
            m.entries()[i] = kvm_msr_entry{indices[i], 0, 0};
        const int r = ::ioctl(fd_.get(), KVM_GET_MSRS, m.get());
        if (r < 0) return fail_sys(fmt::format("KVM_GET_MSRS vCPU {}", id_));
        const auto read = static_cast<std::size_t>(r);
        out.insert(out.end(), m.entries().begin(),
                   m.entries().begin() + static_cast<std::ptrdiff_t>(read));
        // The one at `read` could not be read: skip it, read on after it.
        indices = indices.subspan(std::min(read + 1, indices.size()));
    }
    return out;
}

Result<> Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) {
    FlexBuffer<kvm_cpuid2, kvm_cpuid_entry2> c(entries);
    c->nent = static_cast<std::uint32_t>(entries.size());
    if (::ioctl(fd_.get(), KVM_SET_CPUID2, c.get()) != 0)
        return fail_sys(fmt::format("KVM_SET_CPUID2 ({} entries) vCPU {}", entries.size(), id_));
    return {};
}

Result<> Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) {
    FlexBuffer<kvm_msrs, kvm_msr_entry> m(entries);
    m->nmsrs = static_cast<std::uint32_t>(entries.size());
    int r = ::ioctl(fd_.get(), KVM_SET_MSRS, m.get());
    if (r < 0) return fail_sys(fmt::format("KVM_SET_MSRS vCPU {}", id_));
    if (static_cast<std::size_t>(r) != entries.size())
        return fail("KVM_SET_MSRS vCPU {}: MSR {:#x} refused", id_,
                    entries[static_cast<std::size_t>(r)].index);
    return {};
}

}  // namespace stockade::kvm
