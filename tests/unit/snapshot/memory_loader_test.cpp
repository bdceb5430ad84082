// The memory loader of a lazy sealed restore, on a real userfaultfd: memory registered for
// missing pages is filled from a sealed part as it is touched and in the background, zero
// chunks as the zero page, chunks that straddle two mappings in both; a tampered chunk stops
// the load naming it; a sandbox that goes away ends it.
#include "snapshot/memory_loader.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <thread>

#include "sealed_files.hpp"

namespace stockade::snapshot::test {
namespace {

constexpr std::uint32_t kLoaderChunk = 16384;  // four pages
constexpr std::size_t kPage = 4096;

// A userfaultfd this process may use: for kernel faults too where it is privileged, else for
// its own user-mode accesses (all this test makes); invalid where there is none at all.
UniqueFd userfaultfd() {
    UniqueFd fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
    if (!fd)
        fd = UniqueFd(static_cast<int>(
            ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)));
    if (!fd) return fd;
    uffdio_api api{UFFD_API, 0, 0};
    EXPECT_EQ(::ioctl(fd.get(), UFFDIO_API, &api), 0) << std::strerror(errno);
    return fd;
}

// Said, not passed over silently: a kernel without userfaultfd, or a container's seccomp
// filter that refuses it (CI's machine and the lab have it).
#define SKIP_WITHOUT_USERFAULTFD()                                                               \
    if (!UniqueFd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY))) \
             .valid())                                                                           \
    GTEST_SKIP() << "no userfaultfd here: " << std::strerror(errno)

// Guest RAM as the sandbox has it: anonymous mappings, registered for missing pages.
struct Ram {
    std::vector<std::pair<std::uint8_t*, std::size_t>> maps;
    std::vector<memory_loader::Region> regions;
    UniqueFd uffd = userfaultfd();

    explicit Ram(const std::vector<std::size_t>& sizes) {
        if (!uffd) return;
        std::uint64_t offset = 0;
        for (std::size_t size : sizes) {
            void* p =
                ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            EXPECT_NE(p, MAP_FAILED);
            auto* host = static_cast<std::uint8_t*>(p);
            uffdio_register reg{
                {reinterpret_cast<std::uint64_t>(host), size}, UFFDIO_REGISTER_MODE_MISSING, 0};
            EXPECT_EQ(::ioctl(uffd.get(), UFFDIO_REGISTER, &reg), 0) << std::strerror(errno);
            maps.emplace_back(host, size);
            regions.push_back({reinterpret_cast<std::uint64_t>(host), size, offset});
            offset += size;
        }
    }
    ~Ram() {
        for (auto [p, size] : maps)
            ::munmap(p, size);
    }
    std::uint8_t& at(std::size_t offset) {
        for (auto [p, size] : maps) {
            if (offset < size) return p[offset];
            offset -= size;
        }
        ADD_FAILURE() << "offset past the RAM";
        return maps[0].first[0];
    }
};

struct Part {
    Bytes plaintext;
    Sealed sealed;
    UniqueFd fd;
};

// `chunks` chunks of pattern, every third of them zeros.
Part part_of(std::size_t chunks, const SealKey& key, const SnapshotId& id) {
    Part p;
    p.plaintext = pattern(chunks * kLoaderChunk, 7);
    for (std::size_t c = 0; c < chunks; c += 3)
        std::memset(p.plaintext.data() + c * kLoaderChunk, 0, kLoaderChunk);
    p.sealed = seal(key, id, "memory", p.plaintext, kLoaderChunk);
    p.fd = file_with(p.sealed.bytes);
    return p;
}

struct Peer {
    UniqueFd loader_end, sandbox_end;
    Peer() {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        loader_end = UniqueFd(sv[0]);
        sandbox_end = UniqueFd(sv[1]);
    }
};

TEST(MemoryLoader, FillsEveryPageOnTouchAndInTheBackground) {
    SKIP_WITHOUT_USERFAULTFD();
    const SealKey key = key_of(3);
    const SnapshotId id = id_of(4);
    constexpr std::size_t kChunks = 24;
    Part part = part_of(kChunks, key, id);
    // 10 pages, then the rest: chunk 2 lies across the two mappings.
    Ram ram({10 * kPage, kChunks * kLoaderChunk - 10 * kPage});
    auto reader = SealedReader::open(part.fd.get(), key, id, part.sealed.record);
    ASSERT_TRUE(reader) << reader.error().message;
    Peer peer;
    // A touch that waits before the loader starts: its fault is the first thing it serves.
    auto touched =
        std::async(std::launch::async, [&] { return ram.at(part.plaintext.size() - 1); });
    pollfd pending{ram.uffd.get(), POLLIN, 0};
    if (::poll(&pending, 1, 10000) != 1) {
        ram.uffd.reset();  // the touch goes on (on zeros), and so does the test, failed
        FAIL() << "the touch made no fault";
    }
    auto served = std::async(std::launch::async, [&] {
        return serve_memory(*reader, ram.uffd.get(), ram.regions, peer.loader_end.get());
    });
    // Touched while the loader runs (each read waits for its chunk, or finds it there): a
    // page either side of the mappings' boundary, and a write.
    auto more = std::async(std::launch::async, [&] {
        const std::pair<std::uint8_t, std::uint8_t> read{ram.at(10 * kPage - 1),
                                                         ram.at(10 * kPage)};
        ram.at(5 * kLoaderChunk + 100) = 0xab;
        return read;
    });
    auto outcome = served.get();
    if (!outcome) ram.uffd.reset();  // whoever still waits for a page gets zeros and goes on
    ASSERT_TRUE(outcome) << outcome.error().message;
    EXPECT_EQ(touched.get(), part.plaintext.back());
    const auto [before, after] = more.get();
    EXPECT_EQ(before, part.plaintext[10 * kPage - 1]);
    EXPECT_EQ(after, part.plaintext[10 * kPage]);
    EXPECT_TRUE(outcome->complete);
    EXPECT_GE(outcome->done.faulted, 1u);
    EXPECT_EQ(outcome->done.faulted + outcome->done.background, kChunks);
    EXPECT_EQ(outcome->done.zero, kChunks / 3);
    part.plaintext[5 * kLoaderChunk + 100] = 0xab;
    for (std::size_t i = 0; i < part.plaintext.size(); ++i)
        if (ram.at(i) != part.plaintext[i]) {
            ADD_FAILURE() << "byte " << i << " differs";
            break;
        }
    // A zero chunk's page stays writable (the zero page is copied on write).
    ram.at(0) = 1;
    EXPECT_EQ(ram.at(0), 1);
}

TEST(MemoryLoader, ATamperedChunkStopsTheLoadNamingIt) {
    SKIP_WITHOUT_USERFAULTFD();
    const SealKey key = key_of(3);
    const SnapshotId id = id_of(4);
    constexpr std::size_t kChunks = 8;
    Part part = part_of(kChunks, key, id);
    part.sealed.bytes[at_chunk(5, kLoaderChunk) + 7] ^= 0x10;
    part.fd = file_with(part.sealed.bytes);
    Ram ram({kChunks * kLoaderChunk});
    auto reader = SealedReader::open(part.fd.get(), key, id, part.sealed.record);
    ASSERT_TRUE(reader) << reader.error().message;
    Peer peer;
    auto outcome = serve_memory(*reader, ram.uffd.get(), ram.regions, peer.loader_end.get());
    ASSERT_FALSE(outcome);
    EXPECT_NE(outcome.error().message.find("chunk 5"), std::string::npos)
        << outcome.error().message;
    // Chunks before it were placed; it and those after it were not.
    EXPECT_EQ(ram.at(kLoaderChunk + 1), part.plaintext[kLoaderChunk + 1]);
    unsigned char present = 0;
    ASSERT_EQ(::mincore(ram.maps[0].first + 5 * kLoaderChunk, kPage, &present), 0);
    EXPECT_EQ(present & 1, 0);
}

TEST(MemoryLoader, EndsWhenTheSandboxIsGone) {
    SKIP_WITHOUT_USERFAULTFD();
    const SealKey key = key_of(3);
    const SnapshotId id = id_of(4);
    Part part = part_of(64, key, id);
    Ram ram({64 * kLoaderChunk});
    auto reader = SealedReader::open(part.fd.get(), key, id, part.sealed.record);
    ASSERT_TRUE(reader) << reader.error().message;
    Peer peer;
    peer.sandbox_end.reset();
    auto outcome = serve_memory(*reader, ram.uffd.get(), ram.regions, peer.loader_end.get());
    ASSERT_TRUE(outcome) << outcome.error().message;
    EXPECT_FALSE(outcome->complete);
}

}  // namespace
}  // namespace stockade::snapshot::test
