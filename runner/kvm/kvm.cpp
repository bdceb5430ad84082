#include "runner/kvm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>

#include "base/flex_buffer.hpp"

namespace stockade::kvm {

Result<Kvm> Kvm::open(const char* path) {
    int raw = ::open(path, O_RDWR | O_CLOEXEC);
    if (raw < 0) {
        int err = errno;
        if (err == ENOENT)
            return fail("open {}: no such device (this host has no KVM; run inside lab/run)", path);
        return fail_sys(fmt::format("open {}", path), err);
    }
    UniqueFd fd(raw);
    int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
    if (version < 0) return fail_sys("KVM_GET_API_VERSION");
    if (version != KVM_API_VERSION)
        return fail("KVM_GET_API_VERSION: version {} is not the supported {}", version,
                    KVM_API_VERSION);
    return Kvm(std::move(fd));
}

int Kvm::check_extension(int cap) const {
    int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

Result<> Kvm::require(int cap, std::string_view name) const {
    if (check_extension(cap) <= 0) return fail("KVM lacks {} (capability {})", name, cap);
    return {};
}

Result<CpuidEntries> Kvm::supported_cpuid() const {
    // Grow the buffer until KVM stops answering E2BIG.
    for (std::uint32_t n = 64; n <= 4096; n *= 2) {
        FlexBuffer<kvm_cpuid2, kvm_cpuid_entry2> c(n);
        c->nent = n;
        if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, c.get()) == 0) {
            const auto filled = c.entries().first(std::min(c->nent, n));
            return CpuidEntries(filled.begin(), filled.end());
        }
        if (errno != E2BIG) return fail_sys("KVM_GET_SUPPORTED_CPUID");
    }
    return fail("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<std::size_t> Kvm::vcpu_mmap_size() const {
    int r = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (r <= 0) return fail_sys("KVM_GET_VCPU_MMAP_SIZE");
    return static_cast<std::size_t>(r);
}

Result<std::vector<std::uint32_t>> Kvm::msr_index_list() const {
    kvm_msr_list probe{};  // nmsrs = 0: KVM answers E2BIG with the count filled in
    if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, &probe) != 0 && errno != E2BIG)
        return fail_sys("KVM_GET_MSR_INDEX_LIST");
    FlexBuffer<kvm_msr_list, std::uint32_t> l(probe.nmsrs);
    l->nmsrs = probe.nmsrs;
    if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, l.get()) != 0)
        return fail_sys("KVM_GET_MSR_INDEX_LIST");
    const auto filled = l.entries().first(std::min(l->nmsrs, probe.nmsrs));
    return std::vector<std::uint32_t>(filled.begin(), filled.end());
}

Result<> check_required_capabilities(const Kvm& kvm) {
    struct Cap {
        int cap;
        const char* name;
    };
    static constexpr Cap kCaps[] = {
        {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
        {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
        {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
        {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
        {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
        {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
        {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
        {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
        {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
        {KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER"},
    };
    for (const Cap& c : kCaps)
        STOCKADE_TRY_VOID(kvm.require(c.cap, c.name));
    return {};
}

}  // namespace stockade::kvm
