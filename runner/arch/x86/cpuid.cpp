#include "runner/arch/x86/cpuid.hpp"

#include <bit>

#include <fmt/format.h>

namespace stockade::x86 {
namespace {

constexpr std::uint32_t kLeaf1EcxVmx = 1u << 5;
constexpr std::uint32_t kLeaf1EcxTscDeadline = 1u << 24;
constexpr std::uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr std::uint32_t kLeaf1EdxHtt = 1u << 28;
constexpr std::uint32_t kExt1EcxSvm = 1u << 2;

// Bits of APIC id needed to number `n` cores (x2APIC topology shift).
std::uint32_t id_bits(std::uint32_t n) {
    return n <= 1 ? 0 : std::bit_width(n - 1);
}

}  // namespace

CpuVendor cpu_vendor(const kvm::CpuidEntries& entries) {
    for (const auto& e : entries) {
        if (e.function != 0) continue;
        if (e.ebx == 0x756e'6547 && e.edx == 0x4965'6e69 && e.ecx == 0x6c65'746e)
            return CpuVendor::intel;  // "GenuineIntel"
        if (e.ebx == 0x6874'7541 && e.edx == 0x6974'6e65 && e.ecx == 0x444d'4163)
            return CpuVendor::amd;  // "AuthenticAMD"
    }
    return CpuVendor::other;
}

kvm::CpuidEntries filter_cpuid(const kvm::CpuidEntries& supported, std::uint32_t vcpu_id,
                               std::uint32_t vcpu_count) {
    const CpuVendor vendor = cpu_vendor(supported);
    const std::uint32_t apic_id = vcpu_id;  // APIC ids are vCPU indices, as in the MADT
    kvm::CpuidEntries out;
    out.reserve(supported.size());
    for (kvm_cpuid_entry2 e : supported) {
        switch (e.function) {
            case 0x1:
                e.ebx = (e.ebx & 0xffff) | (std::min(vcpu_count, 255u) << 16) | (apic_id << 24);
                e.ecx = (e.ecx & ~kLeaf1EcxVmx) | kLeaf1EcxHypervisor | kLeaf1EcxTscDeadline;
                e.edx |= kLeaf1EdxHtt;
                break;
            case 0x4:
                if (vendor == CpuVendor::intel) {
                    const std::uint32_t level = (e.eax >> 5) & 7;
                    const std::uint32_t sharing = level >= 3 ? std::min(vcpu_count, 4096u) - 1 : 0;
                    e.eax = (e.eax & 0x3fff) | (sharing << 14) |
                            ((std::min(vcpu_count, 64u) - 1) << 26);
                }
                break;
            case 0xa:  // no PMU: the guest never touches performance counter MSRs
                e.eax = e.ebx = e.ecx = e.edx = 0;
                break;
            case 0xb:
            case 0x1f:
                e.edx = apic_id;
                if (e.index == 0) {  // SMT level: one thread per core
                    e.eax = 0;
                    e.ebx = 1;
                    e.ecx = (1u << 8) | 0;
                } else if (e.index == 1) {  // core level: every vCPU is a core
                    e.eax = id_bits(vcpu_count);
                    e.ebx = vcpu_count;
                    e.ecx = (2u << 8) | 1;
                } else {
                    e.eax = e.ebx = 0;
                    e.ecx = e.index;
                }
                break;
            case 0x8000'0001:
                e.ecx &= ~kExt1EcxSvm;
                break;
            case 0x8000'0008:
                if (vendor == CpuVendor::amd)
                    e.ecx = (e.ecx & ~0xf0ffu) | ((vcpu_count - 1) & 0xff);
                break;
            case 0x8000'001e:
                if (vendor == CpuVendor::amd) {
                    e.eax = apic_id;
                    e.ebx = vcpu_id & 0xff;  // core id; one thread per core
                    e.ecx = 0;               // node 0
                }
                break;
            default:
                break;
        }
        out.push_back(e);
    }
    return out;
}

CpuFeatures guest_cpu_features(const kvm::CpuidEntries& guest) {
    struct Word {
        std::uint32_t leaf, subleaf;
        const char* reg;
        std::uint32_t kvm_cpuid_entry2::*field;
        std::uint32_t dynamic = 0;  // bits the guest's state sets, not the CPU's
    };
    static constexpr std::uint32_t kOsxsave = 1u << 27, kOspke = 1u << 4;
    static const Word kWords[] = {
        {0x1, 0, "ecx", &kvm_cpuid_entry2::ecx, kOsxsave},
        {0x1, 0, "edx", &kvm_cpuid_entry2::edx},
        {0x7, 0, "ebx", &kvm_cpuid_entry2::ebx},
        {0x7, 0, "ecx", &kvm_cpuid_entry2::ecx, kOspke},
        {0x7, 0, "edx", &kvm_cpuid_entry2::edx},
        {0x7, 1, "eax", &kvm_cpuid_entry2::eax},
        {0xd, 1, "eax", &kvm_cpuid_entry2::eax},
        {0x8000'0001, 0, "ecx", &kvm_cpuid_entry2::ecx},
        {0x8000'0001, 0, "edx", &kvm_cpuid_entry2::edx},
        {0x8000'0007, 0, "edx", &kvm_cpuid_entry2::edx},
        {0x8000'0008, 0, "ebx", &kvm_cpuid_entry2::ebx},
    };
    CpuFeatures out;
    for (const Word& w : kWords)
        for (const auto& e : guest) {
            const bool indexed = (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0;
            if (e.function != w.leaf || (indexed && e.index != w.subleaf)) continue;
            out[fmt::format("{:x}.{}.{}", w.leaf, w.subleaf, w.reg)] = (e.*w.field) & ~w.dynamic;
            break;
        }
    return out;
}

std::string_view vendor_name(CpuVendor vendor) {
    switch (vendor) {
        case CpuVendor::intel:
            return "intel";
        case CpuVendor::amd:
            return "amd";
        case CpuVendor::other:
            break;
    }
    return "other";
}

std::vector<std::string> missing_cpu_features(const CpuFeatures& saw, const CpuFeatures& now) {
    std::vector<std::string> missing;
    for (const auto& [word, bits] : saw) {
        const auto it = now.find(word);
        const std::uint32_t lacking = bits & ~(it == now.end() ? 0u : it->second);
        for (int bit = 0; bit < 32; ++bit)
            if (lacking & (1u << bit)) missing.push_back(fmt::format("{} bit {}", word, bit));
    }
    return missing;
}

}  // namespace stockade::x86
