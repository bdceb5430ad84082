#pragma once
// Minimal ACPI for a HW-reduced platform: RSDP -> XSDT -> FADT (HW_REDUCED_ACPI, sleep
// control register for S5), DSDT (COM1, pvpanic, VMGenID and the Generic Event Device that
// announces a new generation, \_S5), MADT (one LAPIC per vCPU, the IOAPIC, LINT1 = NMI). The Debian
// cloud kernel has no MP-table parser (CONFIG_X86_MPPARSE is off), so ACPI is how it learns about
// more than one CPU.
#include <cstdint>
#include <vector>

#include "base/error.hpp"

namespace stockade::x86 {

struct AcpiTables {
    std::vector<std::uint8_t> blob;  // placed at `base`
    std::uint64_t rsdp_addr = 0;     // == base
};

// The PCI root bridge's windows, when the machine has a PCI bus.
struct PciHostWindows {
    std::uint32_t mmio32_start, mmio32_end;  // inclusive end
    std::uint64_t mmio64_start, mmio64_end;
};

[[nodiscard]] Result<AcpiTables> build_acpi_tables(std::uint64_t base, std::uint32_t vcpu_count,
                                                   const PciHostWindows* pci = nullptr);

// Sleep control register semantics (ACPI 6.4, 4.8.3.7): SLP_TYP in bits 4:2, SLP_EN bit 5.
inline constexpr std::uint8_t kSleepEnable = 1u << 5;
inline constexpr std::uint8_t kS5SleepType = 5;
[[nodiscard]] constexpr std::uint8_t sleep_type_of(std::uint8_t v) {
    return (v >> 2) & 7;
}

// The checksum rule every ACPI table obeys: all bytes sum to 0 (mod 256).
[[nodiscard]] std::uint8_t acpi_checksum(const std::uint8_t* data, std::size_t len);

}  // namespace stockade::x86
