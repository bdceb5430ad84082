#pragma once
// CPUID for each vCPU, derived from KVM_GET_SUPPORTED_CPUID: APIC ids and topology that
// match the MADT, the hypervisor bit, the TSC deadline timer, no PMU and no nested
// virtualisation (VMX/SVM hidden: a large attack surface the sandbox does not need).
#include <cstdint>

#include "runner/kvm/kvm.hpp"

namespace stockade::x86 {

enum class CpuVendor { intel, amd, other };
[[nodiscard]] CpuVendor cpu_vendor(const kvm::CpuidEntries& entries);

[[nodiscard]] kvm::CpuidEntries filter_cpuid(const kvm::CpuidEntries& supported,
                                             std::uint32_t vcpu_id, std::uint32_t vcpu_count);

}  // namespace stockade::x86
