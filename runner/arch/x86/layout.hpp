#pragma once
// The guest physical address map of a stockade x86-64 micro-VM.
//
//   0x0000_0500  GDT (5 entries)                 0x0000_7000  zero page (boot_params)
//   0x0000_8ff0  initial stack top              0x0000_9000  PML4, 0xa000 PDPT,
//   0x0000_b000  four page directories: 4 GiB identity-mapped with 2 MiB pages
//   0x0002_0000  kernel command line             0x0009_fc00  reserved (EBDA..1 MiB)
//   0x000d_f000  the VM generation id (ACPI VMGenID, 16 bytes)
//   0x000e_0000  ACPI tables (RSDP found by the legacy scan and by boot_params)
//   0x0010_0000  protected-mode kernel (bzImage), then free RAM; initrd at the top of
//                RAM below 4 GiB
//   0xc000_0000  32-bit MMIO hole (PCI BARs) up to 0xfec0_0000 (IOAPIC), 0xfee0_0000
//                (LAPIC); KVM's TSS and identity-map pages at 0xfffb_c000
//   4 GiB        RAM above the hole, when the guest has more than 3 GiB
#include <cstdint>

namespace stockade::x86 {

inline constexpr std::uint64_t kGdtAddr = 0x500;
inline constexpr std::uint64_t kZeroPageAddr = 0x7000;
inline constexpr std::uint64_t kBootStackTop = 0x8ff0;
inline constexpr std::uint64_t kPml4Addr = 0x9000;
inline constexpr std::uint64_t kPdptAddr = 0xa000;
inline constexpr std::uint64_t kPdAddr = 0xb000;  // 4 pages
inline constexpr std::uint64_t kCmdlineAddr = 0x20000;
inline constexpr std::uint64_t kCmdlineMax = 0x10000;  // the kernel's own limit is lower
inline constexpr std::uint64_t kEbdaStart = 0x9fc00;
// ACPI VMGenID: 16 bytes the guest's vmgenid driver reads (the DSDT's VGEN.ADDR), new after
// each restore, which the Generic Event Device's interrupt announces.
inline constexpr std::uint64_t kVmGenIdAddr = 0xdf000;
inline constexpr std::uint64_t kVmGenIdSize = 16;
inline constexpr std::uint64_t kAcpiAddr = 0xe0000;
static_assert(kVmGenIdAddr >= kEbdaStart && kVmGenIdAddr + kVmGenIdSize <= kAcpiAddr,
              "the generation id lies in the reserved range, below the ACPI tables");
inline constexpr std::uint64_t kAcpiMax = 0x20000;  // 0xe0000..0xfffff
inline constexpr std::uint64_t kHighMemStart = 0x100000;
inline constexpr std::uint64_t kKernelLoadAddr = 0x100000;

inline constexpr std::uint64_t kMmioHoleStart = 0xc000'0000;
inline constexpr std::uint64_t kMmioHoleEnd = 0x1'0000'0000;
inline constexpr std::uint64_t kIoApicAddr = 0xfec0'0000;
inline constexpr std::uint64_t kLapicAddr = 0xfee0'0000;
inline constexpr std::uint64_t kIdentityMapAddr = 0xfffb'c000;
inline constexpr std::uint64_t kTssAddr = 0xfffb'd000;
inline constexpr std::uint64_t kHighRamStart = 0x1'0000'0000;

// Platform I/O ports beside the legacy PC ones (UART 0x3f8, i8042 0x60/0x64).
inline constexpr std::uint16_t kPvPanicPort = 0x505;       // pvpanic (ACPI QEMU0001)
inline constexpr std::uint16_t kSleepControlPort = 0x600;  // ACPI HW-reduced sleep control
inline constexpr std::uint16_t kSleepStatusPort = 0x601;   // ACPI HW-reduced sleep status

inline constexpr std::uint32_t kSerialIrq = 4;
inline constexpr std::uint32_t kGedIrq = 5;  // the ACPI Generic Event Device (edge, high)
inline constexpr std::uint64_t kMiB = 1024 * 1024;

}  // namespace stockade::x86
