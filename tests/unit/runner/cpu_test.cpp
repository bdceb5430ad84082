// CPUID filtering, GDT/segments, page tables.
#include <gtest/gtest.h>

#include "runner/arch/x86/cpu_setup.hpp"
#include "runner/arch/x86/cpuid.hpp"
#include "runner/arch/x86/layout.hpp"
#include "runner/arch/x86/page_tables.hpp"

namespace stockade::x86 {
namespace {

kvm_cpuid_entry2 entry(std::uint32_t fn, std::uint32_t index = 0) {
    kvm_cpuid_entry2 e{};
    e.function = fn;
    e.index = index;
    return e;
}

kvm::CpuidEntries fake_supported(bool amd) {
    kvm::CpuidEntries v;
    auto e0 = entry(0);
    e0.eax = 0x1f;
    if (amd) {
        e0.ebx = 0x68747541;
        e0.edx = 0x69746e65;
        e0.ecx = 0x444d4163;
    } else {
        e0.ebx = 0x756e6547;
        e0.edx = 0x49656e69;
        e0.ecx = 0x6c65746e;
    }
    v.push_back(e0);
    auto e1 = entry(1);
    e1.ebx = 0xff00'0800;  // stale APIC id and count from the host
    e1.ecx = 1u << 5;      // VMX
    v.push_back(e1);
    auto e4 = entry(4);
    e4.eax = (3u << 5) | 0x1f;  // an L3 cache
    v.push_back(e4);
    auto ea = entry(0xa);
    ea.eax = 0x0704'0802;
    v.push_back(ea);
    v.push_back(entry(0xb, 0));
    v.push_back(entry(0xb, 1));
    v.push_back(entry(0xb, 2));
    auto ext1 = entry(0x8000'0001);
    ext1.ecx = 1u << 2;  // SVM
    v.push_back(ext1);
    auto ext8 = entry(0x8000'0008);
    ext8.ecx = 0x0000'f00f;
    v.push_back(ext8);
    v.push_back(entry(0x8000'001e));
    return v;
}

const kvm_cpuid_entry2& find(const kvm::CpuidEntries& v, std::uint32_t fn, std::uint32_t idx = 0) {
    for (const auto& e : v)
        if (e.function == fn && e.index == idx) return e;
    throw std::runtime_error("no such leaf");
}

TEST(Cpuid, AGuestsFeatureWordsLeaveOutWhatItsOwnStateSets) {
    kvm::CpuidEntries v = fake_supported(true);
    auto e7 = entry(7, 0);
    e7.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e7.ebx = 0x219c'01ab;
    e7.ecx = 0x0040'0010;  // OSPKE (bit 4) is the guest's CR4, not the CPU
    v.push_back(e7);
    auto e71 = entry(7, 1);
    e71.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e71.eax = 0x10;
    v.push_back(e71);
    for (auto& e : v)
        if (e.function == 1) e.ecx |= (1u << 27) | (1u << 28);  // OSXSAVE, AVX
    const CpuFeatures f = guest_cpu_features(filter_cpuid(v, 0, 2));
    EXPECT_EQ(f.at("1.0.ecx") & (1u << 27), 0u) << "OSXSAVE left out";
    EXPECT_NE(f.at("1.0.ecx") & (1u << 28), 0u) << "AVX kept";
    EXPECT_EQ(f.at("1.0.ecx") & (1u << 5), 0u) << "VMX hidden from the guest, so not needed";
    EXPECT_EQ(f.at("7.0.ebx"), 0x219c'01abu);
    EXPECT_EQ(f.at("7.0.ecx"), 0x0040'0000u);
    EXPECT_EQ(f.at("7.1.eax"), 0x10u);
    EXPECT_TRUE(f.contains("80000001.0.ecx"));
    EXPECT_FALSE(f.contains("d.1.eax")) << "a leaf the CPU does not have is not recorded";
    EXPECT_EQ(vendor_name(cpu_vendor(v)), "amd");
}

TEST(Cpuid, MissingFeaturesAreNamedBitByBit) {
    const CpuFeatures saw{{"1.0.ecx", 0x5}, {"7.0.ebx", 1u << 31}, {"d.1.eax", 0x1}};
    EXPECT_TRUE(missing_cpu_features(saw, saw).empty());
    EXPECT_TRUE(missing_cpu_features({}, saw).empty());
    const CpuFeatures more{{"1.0.ecx", 0xff}, {"7.0.ebx", ~0u}, {"d.1.eax", 0x3}};
    EXPECT_TRUE(missing_cpu_features(saw, more).empty()) << "a host with more is fine";
    const CpuFeatures less{{"1.0.ecx", 0x1}, {"7.0.ebx", 0}};
    EXPECT_EQ(missing_cpu_features(saw, less),
              (std::vector<std::string>{"1.0.ecx bit 2", "7.0.ebx bit 31", "d.1.eax bit 0"}));
}

TEST(Cpuid, DetectsVendor) {
    EXPECT_EQ(cpu_vendor(fake_supported(true)), CpuVendor::amd);
    EXPECT_EQ(cpu_vendor(fake_supported(false)), CpuVendor::intel);
}

TEST(Cpuid, SetsApicIdTopologyAndHidesNestedVirtAndPmu) {
    for (bool amd : {false, true}) {
        auto out = filter_cpuid(fake_supported(amd), 2, 4);
        const auto& l1 = find(out, 1);
        EXPECT_EQ(l1.ebx >> 24, 2u) << "APIC id";
        EXPECT_EQ((l1.ebx >> 16) & 0xff, 4u) << "logical processors";
        EXPECT_EQ(l1.ebx & 0xffff, 0x0800u) << "CLFLUSH size kept";
        EXPECT_FALSE(l1.ecx & (1u << 5)) << "no VMX";
        EXPECT_TRUE(l1.ecx & (1u << 31)) << "hypervisor";
        EXPECT_TRUE(l1.ecx & (1u << 24)) << "TSC deadline";
        EXPECT_FALSE(find(out, 0x8000'0001).ecx & (1u << 2)) << "no SVM";
        const auto& pmu = find(out, 0xa);
        EXPECT_EQ(pmu.eax | pmu.ebx | pmu.ecx | pmu.edx, 0u) << "no PMU";
        EXPECT_EQ(find(out, 0xb, 0).edx, 2u);
        EXPECT_EQ(find(out, 0xb, 1).ebx, 4u) << "4 cores";
        EXPECT_EQ(find(out, 0xb, 1).eax, 2u) << "2 bits of core id";
        EXPECT_EQ((find(out, 0xb, 1).ecx >> 8) & 0xff, 2u) << "core level";
        EXPECT_EQ((find(out, 0xb, 2).ecx >> 8) & 0xff, 0u) << "invalid level";
        if (amd) {
            EXPECT_EQ(find(out, 0x8000'0008).ecx & 0xff, 3u) << "NC = cores - 1";
            EXPECT_EQ(find(out, 0x8000'0008).ecx & 0xf000, 0u);
            EXPECT_EQ(find(out, 0x8000'001e).eax, 2u);
        } else {
            EXPECT_EQ(find(out, 4).eax >> 26, 3u) << "cores per package - 1";
            EXPECT_EQ((find(out, 4).eax >> 14) & 0xfff, 3u) << "L3 shared by all";
        }
    }
}

TEST(Gdt, SegmentsDecodeFromTheDescriptorsTheGuestSees) {
    const Gdt g = boot_gdt();
    EXPECT_EQ(g[kGdtCode], 0x00af'9b00'0000'ffffull);
    EXPECT_EQ(g[kGdtData], 0x00cf'9300'0000'ffffull);
    kvm_segment cs = segment_from_gdt(g, kGdtCode);
    EXPECT_EQ(cs.selector, 0x10);
    EXPECT_EQ(cs.l, 1);
    EXPECT_EQ(cs.db, 0);
    EXPECT_EQ(cs.type, 0xb);
    EXPECT_EQ(cs.present, 1);
    EXPECT_EQ(cs.limit, 0xffff'ffffu);
    kvm_segment ds = segment_from_gdt(g, kGdtData);
    EXPECT_EQ(ds.selector, 0x18);
    EXPECT_EQ(ds.db, 1);
    EXPECT_EQ(ds.type, 0x3);
    kvm_segment tr = segment_from_gdt(g, kGdtTss);
    EXPECT_EQ(tr.s, 0);
    EXPECT_EQ(tr.type, 0xb);
    kvm_segment null = segment_from_gdt(g, 0);
    EXPECT_EQ(null.unusable, 1);
}

TEST(PageTables, IdentityMapFirstFourGiBWithLargePages) {
    auto mem = GuestMemory::create_unregistered(2 * kMiB).value();
    ASSERT_TRUE(write_identity_page_tables(mem));
    EXPECT_EQ(mem.read_obj<std::uint64_t>(kPml4Addr).value(), kPdptAddr | 0x3);
    for (std::uint64_t gib = 0; gib < 4; ++gib) {
        EXPECT_EQ(mem.read_obj<std::uint64_t>(kPdptAddr + gib * 8).value(),
                  (kPdAddr + gib * 4096) | 0x3);
        for (std::uint64_t i : {0ull, 1ull, 511ull}) {
            std::uint64_t pde = mem.read_obj<std::uint64_t>(kPdAddr + gib * 4096 + i * 8).value();
            EXPECT_EQ(pde, ((gib << 30) | (i << 21)) | 0x83) << gib << "/" << i;
        }
    }
    EXPECT_EQ(mem.read_obj<std::uint64_t>(kPdptAddr + 4 * 8).value(), 0u) << "nothing above 4 GiB";
}

}  // namespace
}  // namespace stockade::x86
