// Guest memory: the one place a guest address becomes a host pointer.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "base/guest_memory.hpp"
#include "guest/cpio.hpp"
#include "guest/job.hpp"

namespace stockade {
namespace {

TEST(GuestMemory, SlicesOnlyInsideOneRegion) {
    const MemoryRegion regions[] = {{0, 0x10000}, {0x100000, 0x2000}};
    auto mem = GuestMemory::create(regions, {HugePages::off, -1}).value();
    EXPECT_TRUE(mem.slice(0, 0x10000));
    EXPECT_TRUE(mem.slice(0xffff, 1));
    EXPECT_TRUE(mem.slice(0x100000, 0x2000));
    EXPECT_TRUE(mem.slice(0x5000, 0));
    EXPECT_FALSE(mem.slice(0xffff, 2)) << "runs past the region";
    EXPECT_FALSE(mem.slice(0x10000, 1)) << "in the gap";
    EXPECT_FALSE(mem.slice(0x101fff, 2));
    EXPECT_FALSE(mem.slice(~0ull, 1)) << "top of the address space";
    EXPECT_FALSE(mem.slice(0x100, ~0ull)) << "a length that wraps";
    EXPECT_FALSE(mem.slice(0x100, ~0ull - 0xff));
    EXPECT_FALSE(mem.slice(0x8000, 0x100000)) << "spans both regions";
    EXPECT_EQ(mem.total_size(), 0x12000u);
}

TEST(GuestMemory, ReadsAndWritesObjectsAndRejectsOutOfRange) {
    auto mem = GuestMemory::create_unregistered(0x4000).value();
    ASSERT_TRUE(mem.write_obj<std::uint64_t>(0x3ff8, 0x1122334455667788));
    EXPECT_EQ(mem.read_obj<std::uint64_t>(0x3ff8).value(), 0x1122334455667788u);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x3ff8).value(), 0x88);
    EXPECT_FALSE(mem.write_obj<std::uint64_t>(0x3ffc, 1));
    auto r = mem.read_obj<std::uint32_t>(0x4000);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("outside guest RAM"), std::string::npos);
}

TEST(GuestMemory, RefusesBadLayouts) {
    const MemoryRegion unaligned[] = {{0, 0x1234}};
    EXPECT_FALSE(GuestMemory::create(unaligned));
    const MemoryRegion overlapping[] = {{0, 0x2000}, {0x1000, 0x2000}};
    EXPECT_FALSE(GuestMemory::create(overlapping));
    const MemoryRegion wrapping[] = {{~0ull & ~0xfffull, 0x2000}};
    EXPECT_FALSE(GuestMemory::create(wrapping));
}

TEST(GuestMemory, HostAddressesAgreeWithGuestAddressesModulo2MiB) {
    // KVM maps guest RAM with 2 MiB pages only where host and guest addresses are congruent.
    constexpr std::uint64_t two_mib = 2 << 20;
    const MemoryRegion regions[] = {{0, 6 << 20}, {4ull << 30, 4 << 20}, {0x7000, 0x1000}};
    for (int i = 0; i < 8; ++i) {  // several placements, not one lucky address
        auto mem = GuestMemory::create(std::span(regions, 2), {HugePages::transparent, -1}).value();
        for (const auto& h : mem.host_regions())
            EXPECT_EQ(reinterpret_cast<std::uintptr_t>(h.host) % two_mib, h.guest_phys % two_mib);
    }
    // A region that does not start on a 2 MiB boundary still works, unaligned.
    auto odd = GuestMemory::create(std::span(regions + 2, 1), {HugePages::off, -1}).value();
    EXPECT_TRUE(odd.write_obj<std::uint32_t>(0x7ffc, 7));
}

TEST(Mapping, AlignedMappingsAreAlignedAndBadAlignmentsRefused) {
    for (std::size_t align : {std::size_t{4096}, std::size_t{2} << 20, std::size_t{1} << 30}) {
        auto m = Mapping::anonymous(3 << 20, 0, align).value();
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m.data()) % align, 0u) << align;
        m.data()[m.size() - 1] = 1;  // all of it is mapped read-write
    }
    EXPECT_FALSE(Mapping::anonymous(1 << 20, 0, 3 << 20)) << "not a power of two";
    EXPECT_FALSE(Mapping::anonymous(1 << 20, 0, 512)) << "below the page size";
    EXPECT_FALSE(Mapping::anonymous(SIZE_MAX - 4095, 0, 2 << 20)) << "size + alignment wraps";
}

// Address space this process holds reserved but inaccessible (PROT_NONE private mappings).
std::size_t inaccessible_mappings() {
    std::ifstream maps("/proc/self/maps");
    std::size_t n = 0;
    for (std::string line; std::getline(maps, line);)
        if (line.find(" ---p ") != std::string::npos) ++n;
    return n;
}

TEST(Mapping, AlignedMappingOfAnOddSizeGivesBackAllOfItsReservation) {
    const std::size_t before = inaccessible_mappings();
    for (int i = 0; i < 4; ++i) {
        auto m = Mapping::anonymous((3 << 20) + 4097 * i + 5, 0, 2 << 20).value();
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m.data()) % (2 << 20), 0u);
        m.data()[m.size() - 1] = 1;
    }
    EXPECT_EQ(inaccessible_mappings(), before);
}

TEST(GuestMemory, ResidentBytesCountsTouchedPages) {
    auto mem = GuestMemory::create_unregistered(64 << 20).value();
    const std::uint64_t before = mem.resident_bytes();
    for (std::uint64_t a = 0; a < (8u << 20); a += 4096)
        ASSERT_TRUE(mem.write_obj<std::uint8_t>(a, 1));
    EXPECT_GE(mem.resident_bytes() - before, 8u << 20);
    EXPECT_LT(mem.resident_bytes(), 64u << 20);
}

TEST(JobArchive, CarriesArgvEnvWorkdirAndHostnameBinarySafe) {
    Job job{{"sh", "-c", "echo 'a b'\n", ""}, {"A=1", "B=x y"}, "/tmp", "box", {}, {}, {}};
    auto archive = build_job_archive(job);
    std::vector<cpio::Entry> entries;
    ASSERT_TRUE(cpio::parse(archive, entries));
    std::map<std::string, std::string> files;
    for (const auto& e : entries)
        files[e.path] = std::string(e.data.begin(), e.data.end());
    EXPECT_EQ(files["stockade/argv"], std::string("sh\0-c\0echo 'a b'\n\0\0", 19));
    EXPECT_EQ(files["stockade/env"], std::string("A=1\0B=x y\0", 10));
    EXPECT_EQ(files["stockade/workdir"], "/tmp");
    EXPECT_EQ(files["stockade/hostname"], "box");
    EXPECT_EQ(archive, build_job_archive(job)) << "deterministic";
}

TEST(JobArchive, CarriesTheNetworkInterfaceOnlyWhenAsked) {
    Job job{{"true"}, {}, "/", "box", {}, {}, {}};
    auto files_of = [](const Job& j) {
        std::vector<cpio::Entry> entries;
        EXPECT_TRUE(cpio::parse(build_job_archive(j), entries));
        std::map<std::string, std::string> files;
        for (const auto& e : entries)
            files[e.path] = std::string(e.data.begin(), e.data.end());
        return files;
    };
    EXPECT_FALSE(files_of(job).contains("stockade/net"));
    job.net = JobNet{"02:11:22:33:44:55", "169.254.10.2/24"};
    EXPECT_EQ(files_of(job)["stockade/net"], "02:11:22:33:44:55 169.254.10.2/24");
    EXPECT_FALSE(files_of(job).contains("stockade/vsock")) << "stdio on the console";
    job.vsock_port = 1027;
    EXPECT_EQ(files_of(job)["stockade/vsock"], "0000001027");
    // The port's width is fixed, so the boot can be planned before the port is known.
    const std::size_t size = build_job_archive(job).size();
    job.vsock_port = 4'294'967'294u;
    EXPECT_EQ(files_of(job)["stockade/vsock"], "4294967294");
    EXPECT_EQ(build_job_archive(job).size(), size);
}

}  // namespace
}  // namespace stockade
