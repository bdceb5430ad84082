// ACPI tables and the AML encoder.
#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <string>

#include "runner/arch/x86/acpi.hpp"
#include "runner/arch/x86/aml.hpp"
#include "runner/arch/x86/layout.hpp"

namespace stockade::x86 {
namespace {

constexpr std::uint64_t kBase = 0xe0000;

struct Table {
    std::string signature;
    std::span<const std::uint8_t> bytes;
};

template <typename T>
T read_le(std::span<const std::uint8_t> b, std::size_t off) {
    T v;
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
}

Table table_at(const std::vector<std::uint8_t>& blob, std::uint64_t addr) {
    auto off = static_cast<std::size_t>(addr - kBase);
    std::span<const std::uint8_t> all(blob);
    std::uint32_t len = read_le<std::uint32_t>(all, off + 4);
    return {std::string(reinterpret_cast<const char*>(blob.data() + off), 4),
            all.subspan(off, len)};
}

TEST(Acpi, RsdpXsdtAndTablesChecksumAndLink) {
    auto t = build_acpi_tables(kBase, 2).value();
    ASSERT_EQ(t.rsdp_addr, kBase);
    std::span<const std::uint8_t> b(t.blob);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 8), "RSD PTR ");
    EXPECT_EQ(acpi_checksum(b.data(), 20), 0) << "RSDP v1 checksum";
    EXPECT_EQ(acpi_checksum(b.data(), 36), 0) << "RSDP extended checksum";
    EXPECT_EQ(b[15], 2);

    Table xsdt = table_at(t.blob, read_le<std::uint64_t>(b, 24));
    EXPECT_EQ(xsdt.signature, "XSDT");
    EXPECT_EQ(acpi_checksum(xsdt.bytes.data(), xsdt.bytes.size()), 0);
    ASSERT_EQ(xsdt.bytes.size(), 36u + 16u);
    Table fadt = table_at(t.blob, read_le<std::uint64_t>(xsdt.bytes, 36));
    Table madt = table_at(t.blob, read_le<std::uint64_t>(xsdt.bytes, 44));
    EXPECT_EQ(fadt.signature, "FACP");
    EXPECT_EQ(madt.signature, "APIC");
    for (const Table* tb : {&fadt, &madt})
        EXPECT_EQ(acpi_checksum(tb->bytes.data(), tb->bytes.size()), 0) << tb->signature;

    // FADT: HW-reduced, the boot-architecture flags, DSDT linked, sleep registers on ports.
    EXPECT_EQ(fadt.bytes.size(), 276u);
    EXPECT_TRUE(read_le<std::uint32_t>(fadt.bytes, 112) & (1u << 20));
    EXPECT_EQ(read_le<std::uint16_t>(fadt.bytes, 109), (1u << 2) | (1u << 5));
    EXPECT_EQ(fadt.bytes[244], 1) << "sleep control in system I/O space";
    EXPECT_EQ(read_le<std::uint64_t>(fadt.bytes, 248), kSleepControlPort);
    EXPECT_EQ(read_le<std::uint64_t>(fadt.bytes, 260), kSleepStatusPort);
    Table dsdt = table_at(t.blob, read_le<std::uint64_t>(fadt.bytes, 140));
    EXPECT_EQ(dsdt.signature, "DSDT");
    EXPECT_EQ(read_le<std::uint32_t>(fadt.bytes, 40), read_le<std::uint64_t>(fadt.bytes, 140));
    EXPECT_EQ(acpi_checksum(dsdt.bytes.data(), dsdt.bytes.size()), 0);
    std::string aml(dsdt.bytes.begin() + 36, dsdt.bytes.end());
    for (const char* needle : {"_SB_", "COM1", "PNP0501", "PEVT", "QEMU0001", "_S5_", "_CRS"})
        EXPECT_NE(aml.find(needle), std::string::npos) << needle;
}

// The VMGenID device and the Generic Event Device that announces a new generation, in the
// bytes the ACPI specification gives for them (not the encoder's own calls).
TEST(Acpi, DsdtHasVmGenIdAndTheGenericEventDeviceThatNotifiesIt) {
    auto t = build_acpi_tables(kBase, 1).value();
    std::span<const std::uint8_t> b(t.blob);
    Table xsdt = table_at(t.blob, read_le<std::uint64_t>(b, 24));
    Table fadt = table_at(t.blob, read_le<std::uint64_t>(xsdt.bytes, 36));
    Table dsdt = table_at(t.blob, read_le<std::uint64_t>(fadt.bytes, 140));
    const std::string aml(dsdt.bytes.begin() + 36, dsdt.bytes.end());
    auto bytes = [](std::initializer_list<int> v) {
        std::string out;
        for (int c : v)
            out.push_back(static_cast<char>(c));
        return out;
    };
    static_assert(kVmGenIdAddr == 0xdf000 && kGedIrq == 5);
    const std::size_t vgen = aml.find("VGEN");
    ASSERT_NE(vgen, std::string::npos);
    const std::size_t hid = aml.find(bytes({0x08, '_', 'H', 'I', 'D', 0x0d}) + "VMGENCTR", vgen);
    EXPECT_NE(hid, std::string::npos) << "Name(_HID, \"VMGENCTR\") inside VGEN";
    // Name(ADDR, Package(){DWord 0xdf000, Zero}): the id's address, low half then high.
    EXPECT_NE(aml.find(bytes({0x08, 'A', 'D', 'D', 'R', 0x12, 0x08, 0x02, 0x0c, 0x00, 0xf0, 0x0d,
                              0x00, 0x00}),
                       vgen),
              std::string::npos);
    const std::size_t ged = aml.find("ACPI0013");
    ASSERT_NE(ged, std::string::npos);
    // Name(_CRS, ResourceTemplate(){IRQNoFlags(){5}}) after the GED's _HID and _UID.
    EXPECT_NE(aml.find(bytes({0x08, '_', 'C', 'R', 'S', 0x11, 0x08, 0x0a, 0x05, 0x22, 0x20, 0x00,
                              0x79, 0x00}),
                       ged),
              std::string::npos);
    // Method(_EVT, 1) { Notify(\_SB.VGEN, 0x80) }.
    EXPECT_NE(aml.find(bytes({0x14, 0x13, '_', 'E', 'V', 'T', 0x01, 0x86, '\\', 0x2e,
                              '_',  'S',  'B', '_', 'V', 'G', 'E',  'N',  0x0a, 0x80}),
                       ged),
              std::string::npos);
}

TEST(Acpi, MadtListsOneLapicPerVcpuAndTheIoApic) {
    for (std::uint32_t n : {1u, 2u, 8u}) {
        auto t = build_acpi_tables(kBase, n).value();
        std::span<const std::uint8_t> b(t.blob);
        Table xsdt = table_at(t.blob, read_le<std::uint64_t>(b, 24));
        Table madt = table_at(t.blob, read_le<std::uint64_t>(xsdt.bytes, 44));
        EXPECT_EQ(read_le<std::uint32_t>(madt.bytes, 36), kLapicAddr);
        std::uint32_t lapics = 0, ioapics = 0, nmis = 0;
        for (std::size_t off = 44; off < madt.bytes.size(); off += madt.bytes[off + 1]) {
            ASSERT_GT(madt.bytes[off + 1], 0);
            switch (madt.bytes[off]) {
                case 0:
                    EXPECT_EQ(madt.bytes[off + 3], lapics) << "APIC id == vCPU index";
                    EXPECT_EQ(madt.bytes[off + 4] & 1, 1) << "enabled";
                    ++lapics;
                    break;
                case 1:
                    EXPECT_EQ(madt.bytes[off + 2], n) << "IOAPIC id after the CPUs'";
                    EXPECT_EQ(read_le<std::uint32_t>(madt.bytes, off + 4), kIoApicAddr);
                    ++ioapics;
                    break;
                case 4:
                    EXPECT_EQ(madt.bytes[off + 5], 1) << "LINT1";
                    ++nmis;
                    break;
                default:
                    ADD_FAILURE() << "unexpected MADT entry " << int(madt.bytes[off]);
            }
        }
        EXPECT_EQ(lapics, n);
        EXPECT_EQ(ioapics, 1u);
        EXPECT_EQ(nmis, 1u);
    }
}

TEST(Acpi, RefusesImpossibleCpuCounts) {
    EXPECT_FALSE(build_acpi_tables(kBase, 0));
    EXPECT_FALSE(build_acpi_tables(kBase, 255));
}

TEST(Aml, PkgLengthEncodings) {
    EXPECT_EQ(aml::pkg_length(0), aml::Bytes({0x01}));
    EXPECT_EQ(aml::pkg_length(62), aml::Bytes({0x3f}));
    // 63 payload bytes need two length bytes: total 65 = 0x41 -> 0x41 & 0xf | 1<<6, 0x41 >> 4.
    EXPECT_EQ(aml::pkg_length(63), aml::Bytes({0x41, 0x04}));
    EXPECT_EQ(aml::pkg_length(0x1000), aml::Bytes({0x83, 0x00, 0x01}));  // 0x1003 in 3 bytes
}

TEST(Aml, EncodesIntegersStringsAndNames) {
    EXPECT_EQ(aml::integer(0), aml::Bytes({0x00}));
    EXPECT_EQ(aml::integer(1), aml::Bytes({0x01}));
    EXPECT_EQ(aml::integer(5), aml::Bytes({0x0a, 0x05}));
    EXPECT_EQ(aml::integer(0x1234), aml::Bytes({0x0b, 0x34, 0x12}));
    EXPECT_EQ(aml::integer(0x12345678), aml::Bytes({0x0c, 0x78, 0x56, 0x34, 0x12}));
    EXPECT_EQ(aml::string("AB"), aml::Bytes({0x0d, 'A', 'B', 0x00}));
    // Name(_S5_, Package(){5, 0}) as the ACPI spec's example encodes it.
    EXPECT_EQ(aml::name("_S5_", aml::package({aml::integer(5), aml::integer(0)})),
              aml::Bytes({0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00}));
    EXPECT_EQ(aml::resource_template({aml::io_port(0x3f8, 8), aml::irq(4)}),
              aml::Bytes({0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
                          0x22, 0x10, 0x00, 0x79, 0x00}));
}

TEST(Aml, NamePathsFromTheRoot) {
    EXPECT_EQ(aml::name_path("\\"), aml::Bytes({'\\', 0x00}));
    EXPECT_TRUE(aml::name_path("_SB_.VGEN").empty()) << "relative paths are not encoded";
    EXPECT_EQ(aml::name_path("\\_SB_"), aml::Bytes({'\\', '_', 'S', 'B', '_'}));
    EXPECT_EQ(aml::name_path("\\_SB_.VGEN"),
              aml::Bytes({'\\', 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N'}));
    EXPECT_EQ(
        aml::name_path("\\_SB_.PCI0.S08_"),
        aml::Bytes({'\\', 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'S', '0', '8', '_'}));
}

TEST(Aml, MethodWrapsItsFlagsAndBody) {
    auto m = aml::method("_EVT", 1, {aml::notify("\\_SB_.VGEN", 0x80)});
    EXPECT_EQ(m, aml::Bytes({0x14, 0x13, '_', 'E', 'V', 'T', 0x01, 0x86, '\\', 0x2e,
                             '_',  'S',  'B', '_', 'V', 'G', 'E',  'N',  0x0a, 0x80}));
    EXPECT_EQ(aml::method("X", 0, {}), aml::Bytes({0x14, 0x06, 'X', '_', '_', '_', 0x00}));
}

TEST(Aml, DeviceAndScopeWrapTheirBodies) {
    auto d = aml::device("COM1", {aml::name("_UID", aml::integer(0))});
    EXPECT_EQ(d[0], 0x5b);
    EXPECT_EQ(d[1], 0x82);
    EXPECT_EQ(d[2], d.size() - 2) << "PkgLength covers itself and the body";
    EXPECT_EQ(std::string(d.begin() + 3, d.begin() + 7), "COM1");
    auto s = aml::scope("\\_SB_", {d});
    EXPECT_EQ(s[0], 0x10);
    EXPECT_EQ(s[2], '\\');
    EXPECT_EQ(std::string(s.begin() + 3, s.begin() + 7), "_SB_");
}

}  // namespace
}  // namespace stockade::x86
