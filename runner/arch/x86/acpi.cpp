#include "runner/arch/x86/acpi.hpp"

#include <cstring>
#include <string_view>

#include "runner/arch/x86/aml.hpp"
#include "runner/arch/x86/layout.hpp"

namespace stockade::x86 {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kFadtHwReducedAcpi = 1u << 20;
constexpr std::uint16_t kBootArchNoVga = 1u << 2;
constexpr std::uint16_t kBootArchNoCmosRtc = 1u << 5;
constexpr std::uint32_t kMadtPcatCompat = 1;

void put(Bytes& b, std::size_t off, const void* src, std::size_t n) {
    if (b.size() < off + n) b.resize(off + n);
    std::memcpy(b.data() + off, src, n);
}
template <typename T>
void put_le(Bytes& b, std::size_t off, T v) {
    put(b, off, &v, sizeof v);
}

// The 36-byte header every System Description Table starts with; length and checksum
// are filled in by finish_table().
Bytes table_header(std::string_view sig, std::uint8_t revision) {
    Bytes t(36, 0);
    put(t, 0, sig.data(), 4);
    t[8] = revision;
    put(t, 10, "STOCKD", 6);
    put(t, 16, "STOCKADE", 8);
    put_le<std::uint32_t>(t, 24, 1);  // OEM revision
    put(t, 28, "STKD", 4);
    put_le<std::uint32_t>(t, 32, 1);  // creator revision
    return t;
}

void finish_table(Bytes& t) {
    put_le<std::uint32_t>(t, 4, static_cast<std::uint32_t>(t.size()));
    t[9] = 0;
    t[9] = static_cast<std::uint8_t>(-acpi_checksum(t.data(), t.size()));
}

// Generic Address Structure for an 8-bit I/O port register.
void put_gas_io8(Bytes& t, std::size_t off, std::uint16_t port) {
    t[off] = 1;      // system I/O space
    t[off + 1] = 8;  // register bit width
    t[off + 2] = 0;  // bit offset
    t[off + 3] = 1;  // byte access
    put_le<std::uint64_t>(t, off + 4, port);
}

Bytes build_dsdt(const PciHostWindows* pci) {
    using namespace aml;
    Bytes t = table_header("DSDT", 2);
    Bytes body;
    auto add = [&](const Bytes& b) { body.insert(body.end(), b.begin(), b.end()); };
    std::vector<Bytes> devices = {
        device("COM1", {name("_HID", string("PNP0501")), name("_UID", integer(0)),
                        name("_CRS", resource_template({io_port(0x3f8, 8), irq(kSerialIrq)}))}),
        device("PEVT", {name("_HID", string("QEMU0001")),
                        name("_CRS", resource_template({io_port(kPvPanicPort, 1)}))}),
        // VMGenID: a kernel with the vmgenid driver finds the generation id at ADDR (low and
        // high halves of its guest address) and reseeds its CRNG when notified that it changed.
        // (_CID: the compatible id the VMGenID specification names, for other guests.)
        device("VGEN", {name("_HID", string("VMGENCTR")), name("_CID", string("VM_Gen_Counter")),
                        name("_UID", integer(0)),
                        name("ADDR", package({integer(kVmGenIdAddr & 0xffff'ffff),
                                              integer(kVmGenIdAddr >> 32)}))}),
        // The Generic Event Device: its interrupt runs _EVT, which tells VGEN (0x80: the
        // generation id changed). The host raises it after a restore.
        device("GED0", {name("_HID", string("ACPI0013")), name("_UID", integer(0)),
                        name("_CRS", resource_template({irq(kGedIrq)})),
                        method("_EVT", 1, {notify("\\_SB_.VGEN", 0x80)})}),
    };
    if (pci != nullptr) {
        // A conventional PCI root bridge (PNP0A03: no PCIe _OSC negotiation) for bus 0,
        // with configuration mechanism #1 and its I/O and memory windows. Devices use
        // MSI-X only, so there is no _PRT.
        devices.push_back(device(
            "PCI0", {name("_HID", string("PNP0A03")), name("_UID", integer(0)),
                     name("_SEG", integer(0)), name("_BBN", integer(0)),
                     name("_CRS", resource_template(
                                      {word_bus_numbers(0, 0), io_port(0xcf8, 8),
                                       word_io(0x0000, 0x0cf7), word_io(0x0d00, 0xffff),
                                       dword_memory(pci->mmio32_start, pci->mmio32_end),
                                       qword_memory(pci->mmio64_start, pci->mmio64_end, true)}))}));
    }
    add(scope("\\_SB_", devices));
    // \_S5: the value the guest writes as SLP_TYP to power off.
    add(name("_S5_", package({integer(kS5SleepType), integer(0)})));
    t.insert(t.end(), body.begin(), body.end());
    finish_table(t);
    return t;
}

Bytes build_fadt(std::uint64_t dsdt) {
    Bytes t = table_header("FACP", 6);
    t.resize(276, 0);
    put_le<std::uint32_t>(t, 40, static_cast<std::uint32_t>(dsdt));
    put_le<std::uint16_t>(t, 109, kBootArchNoVga | kBootArchNoCmosRtc);  // and no 8042 bit:
    // the kernel then does not probe for a keyboard controller (reset still works).
    put_le<std::uint32_t>(t, 112, kFadtHwReducedAcpi);
    t[131] = 0;                           // FADT minor version
    put_le<std::uint64_t>(t, 140, dsdt);  // X_DSDT
    put_gas_io8(t, 244, kSleepControlPort);
    put_gas_io8(t, 256, kSleepStatusPort);
    put(t, 268, "STOCKADE", 8);  // hypervisor vendor identity
    finish_table(t);
    return t;
}

Bytes build_madt(std::uint32_t vcpus) {
    Bytes t = table_header("APIC", 5);
    put_le<std::uint32_t>(t, 36, static_cast<std::uint32_t>(kLapicAddr));
    put_le<std::uint32_t>(t, 40, kMadtPcatCompat);
    for (std::uint32_t i = 0; i < vcpus; ++i) {
        // Processor Local APIC: UID i, APIC id i, enabled.
        Bytes e{0, 8, static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(i), 1, 0, 0, 0};
        t.insert(t.end(), e.begin(), e.end());
    }
    // I/O APIC: id after the CPUs', at its MMIO address, GSI base 0.
    Bytes io{1, 12, static_cast<std::uint8_t>(vcpus), 0, 0, 0, 0, 0, 0, 0, 0, 0};
    std::uint32_t addr = static_cast<std::uint32_t>(kIoApicAddr);
    std::memcpy(io.data() + 4, &addr, 4);
    t.insert(t.end(), io.begin(), io.end());
    // Local APIC NMI: all processors, LINT1.
    Bytes nmi{4, 6, 0xff, 0, 0, 1};
    t.insert(t.end(), nmi.begin(), nmi.end());
    finish_table(t);
    return t;
}

}  // namespace

std::uint8_t acpi_checksum(const std::uint8_t* data, std::size_t len) {
    std::uint8_t sum = 0;
    for (std::size_t i = 0; i < len; ++i)
        sum = static_cast<std::uint8_t>(sum + data[i]);
    return sum;
}

Result<AcpiTables> build_acpi_tables(std::uint64_t base, std::uint32_t vcpu_count,
                                     const PciHostWindows* pci) {
    if (vcpu_count == 0 || vcpu_count > 254)
        return fail("ACPI: {} vCPUs cannot be described (1..254)", vcpu_count);
    // Layout inside the blob, each table 16-byte aligned: RSDP, XSDT, FADT, DSDT, MADT.
    constexpr std::size_t kRsdp = 0, kXsdt = 0x40;
    const Bytes dsdt_probe = build_dsdt(pci);
    const std::size_t fadt_off = kXsdt + 0x40;
    const std::size_t dsdt_off = (fadt_off + 276 + 15) & ~std::size_t{15};
    const std::size_t madt_off = (dsdt_off + dsdt_probe.size() + 15) & ~std::size_t{15};

    Bytes blob;
    Bytes fadt = build_fadt(base + dsdt_off);
    Bytes madt = build_madt(vcpu_count);
    Bytes xsdt = table_header("XSDT", 1);
    put_le<std::uint64_t>(xsdt, 36, base + fadt_off);
    put_le<std::uint64_t>(xsdt, 44, base + madt_off);
    finish_table(xsdt);

    Bytes rsdp(36, 0);
    put(rsdp, 0, "RSD PTR ", 8);
    put(rsdp, 9, "STOCKD", 6);
    rsdp[15] = 2;  // revision: ACPI 2.0+ (XSDT)
    put_le<std::uint32_t>(rsdp, 20, 36);
    put_le<std::uint64_t>(rsdp, 24, base + kXsdt);
    rsdp[8] = static_cast<std::uint8_t>(-acpi_checksum(rsdp.data(), 20));
    rsdp[32] = static_cast<std::uint8_t>(-acpi_checksum(rsdp.data(), 36));

    put(blob, kRsdp, rsdp.data(), rsdp.size());
    put(blob, kXsdt, xsdt.data(), xsdt.size());
    put(blob, fadt_off, fadt.data(), fadt.size());
    put(blob, dsdt_off, dsdt_probe.data(), dsdt_probe.size());
    put(blob, madt_off, madt.data(), madt.size());
    if (blob.size() > kAcpiMax) return fail("ACPI tables ({} bytes) do not fit", blob.size());
    return AcpiTables{std::move(blob), base + kRsdp};
}

}  // namespace stockade::x86
