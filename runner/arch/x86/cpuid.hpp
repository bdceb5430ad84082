#pragma once
// CPUID for each vCPU, derived from KVM_GET_SUPPORTED_CPUID: APIC ids and topology that
// match the MADT, the hypervisor bit, the TSC deadline timer, no PMU and no nested
// virtualisation (VMX/SVM hidden: a large attack surface the sandbox does not need).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runner/kvm/kvm.hpp"

namespace stockade::x86 {

enum class CpuVendor { intel, amd, other };
[[nodiscard]] CpuVendor cpu_vendor(const kvm::CpuidEntries& entries);

[[nodiscard]] kvm::CpuidEntries filter_cpuid(const kvm::CpuidEntries& supported,
                                             std::uint32_t vcpu_id, std::uint32_t vcpu_count);

// What software in a guest may have checked once and relies on from then on: the feature
// words of the CPUID a vCPU was given, keyed "LEAF.SUBLEAF.REGISTER" (leaf in hex): 1.0.ecx
// and edx, 7.0.ebx, ecx and edx, 7.1.eax, d.1.eax, 80000001.0.ecx and edx, 80000007.0.edx,
// 80000008.0.ebx. Bits the guest's own state sets (OSXSAVE, OSPKE) are left out. A snapshot
// keeps them; a restore refuses a host that lacks one.
using CpuFeatures = std::map<std::string, std::uint32_t>;
[[nodiscard]] CpuFeatures guest_cpu_features(const kvm::CpuidEntries& guest);
[[nodiscard]] std::string_view vendor_name(CpuVendor vendor);
// Every bit `saw` has and `now` lacks, as "7.0.ebx bit 5"; empty: `now` has them all.
[[nodiscard]] std::vector<std::string> missing_cpu_features(const CpuFeatures& saw,
                                                            const CpuFeatures& now);

}  // namespace stockade::x86
