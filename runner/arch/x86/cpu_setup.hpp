#pragma once
// The state the boot CPU starts in for the 64-bit boot protocol, the LAPIC LINT wiring
// every vCPU needs, and the GDT it all refers to.
#include <array>
#include <cstdint>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "base/uapi.hpp"
#include "runner/kvm/vcpu.hpp"

namespace stockade::x86 {

// GDT indices required by the boot protocol: __BOOT_CS = 0x10, __BOOT_DS = 0x18.
inline constexpr std::size_t kGdtCode = 2;
inline constexpr std::size_t kGdtData = 3;
inline constexpr std::size_t kGdtTss = 4;
using Gdt = std::array<std::uint64_t, 5>;

[[nodiscard]] constexpr std::uint64_t gdt_entry(std::uint16_t flags, std::uint32_t base,
                                                std::uint32_t limit) {
    return ((std::uint64_t{base} & 0xff00'0000u) << 32) |
           ((std::uint64_t{base} & 0x00ff'ffffu) << 16) | (std::uint64_t{limit} & 0xffffu) |
           ((std::uint64_t{limit} & 0xf'0000u) << 32) | (std::uint64_t{flags & 0xf0ffu} << 40);
}
[[nodiscard]] Gdt boot_gdt();
// The hidden segment state KVM needs, decoded from the same descriptor the guest sees.
[[nodiscard]] kvm_segment segment_from_gdt(const Gdt& gdt, std::size_t index);

// Writes the GDT and sets registers, special registers, FPU and MSRs of the boot CPU
// so it starts at `entry` in long mode with RSI = the zero page.
[[nodiscard]] Result<> setup_boot_cpu(kvm::Vcpu& vcpu, const GuestMemory& mem, std::uint64_t entry);
// MSRs and FPU state every vCPU starts with (application processors get only these).
[[nodiscard]] Result<> setup_common_cpu_state(kvm::Vcpu& vcpu);
// LINT0 = ExtINT (the 8259 PIC) and LINT1 = NMI, as on a PC.
[[nodiscard]] Result<> setup_lapic_lint(kvm::Vcpu& vcpu);

}  // namespace stockade::x86
