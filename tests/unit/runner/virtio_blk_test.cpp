// virtio-blk against a hostile driver: the request parser on malformed chains, and the
// device on a real (memfd) image: reads, writes, read-only disks, out-of-range sectors,
// lengths that overflow, GET_ID, FLUSH and unknown requests.
#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "runner/virtio/blk.hpp"
#include "tests/unit/runner/virtio_test_support.hpp"

namespace stockade::virtio {
namespace {

using fake::FakeWatcher;
using fake::GuestRing;

struct BlkHeader {
    std::uint32_t type, reserved;
    std::uint64_t sector;
};

// --- parse_blk_request on chains built by hand ---

struct ParseRig {
    GuestMemory mem = GuestMemory::create_unregistered(1 << 20).value();
    std::uint64_t next = 0x1000;
    std::uint64_t alloc(std::uint64_t n) {
        const std::uint64_t at = next;
        next += (n + 15) & ~15ull;
        return at;
    }
    Descriptor header(std::uint32_t type, std::uint64_t sector) {
        const std::uint64_t at = alloc(16);
        EXPECT_TRUE(mem.write_obj(at, BlkHeader{type, 0, sector}));
        return {at, 16};
    }
    Descriptor buf(std::uint32_t len) { return {alloc(len), len}; }
};

TEST(BlkParse, SplitsHeaderDataAndStatus) {
    ParseRig p;
    // A write: header, two data buffers, status.
    Chain out;
    out.readable = {p.header(kBlkOut, 9), p.buf(512), p.buf(1024)};
    out.writable = {p.buf(1)};
    const BlkRequest w = parse_blk_request(out, p.mem).value();
    EXPECT_EQ(w.type, kBlkOut);
    EXPECT_EQ(w.sector, 9u);
    ASSERT_EQ(w.data.size(), 2u);
    EXPECT_EQ(w.data[0].addr, out.readable[1].addr);
    EXPECT_EQ(w.data[1].len, 1024u);
    EXPECT_EQ(w.status.addr, out.writable[0].addr);
    EXPECT_EQ(w.status.len, 1u);
    // A read whose status shares the last buffer, with the header split in two pieces.
    const Descriptor hdr = p.header(kBlkIn, 0x1122334455);
    Chain in;
    in.readable = {{hdr.addr, 5}, {hdr.addr + 5, 11}};
    in.writable = {p.buf(512), p.buf(513)};
    const BlkRequest r = parse_blk_request(in, p.mem).value();
    EXPECT_EQ(r.type, kBlkIn);
    EXPECT_EQ(r.sector, 0x1122334455u);
    ASSERT_EQ(r.data.size(), 2u);
    EXPECT_EQ(r.data[1].len, 512u);
    EXPECT_EQ(r.status.addr, in.writable[1].addr + 512);
    // Write data may share the header's buffer.
    const std::uint64_t both = p.alloc(16 + 512);
    ASSERT_TRUE(p.mem.write_obj(both, BlkHeader{kBlkOut, 1, 2}));
    Chain shared;
    shared.readable = {{both, 16 + 512}};
    shared.writable = {p.buf(1)};
    const BlkRequest s = parse_blk_request(shared, p.mem).value();
    ASSERT_EQ(s.data.size(), 1u);
    EXPECT_EQ(s.data[0].addr, both + 16);
    EXPECT_EQ(s.data[0].len, 512u);
}

TEST(BlkParse, RefusesMalformedRequests) {
    ParseRig p;
    const Descriptor status = p.buf(1);
    const Descriptor in_hdr = p.header(kBlkIn, 0), out_hdr = p.header(kBlkOut, 0);
    struct Case {
        const char* what;
        Chain chain;
    };
    const Case cases[] = {
        {"no header at all", Chain{0, {}, {status}}},
        {"header of 12 bytes across two buffers",
         Chain{0, {{in_hdr.addr, 8}, {in_hdr.addr + 8, 4}}, {status}}},
        {"no status", Chain{0, {in_hdr}, {}}},
        {"no status, write", Chain{0, {out_hdr, p.buf(512)}, {}}},
        {"empty status buffer", Chain{0, {in_hdr}, {p.buf(512), {status.addr, 0}}}},
        {"read with device-readable data", Chain{0, {in_hdr, p.buf(512)}, {p.buf(512), status}}},
        {"write with device-writable data", Chain{0, {out_hdr, p.buf(512)}, {p.buf(512), status}}},
        {"write with data in the status buffer", Chain{0, {out_hdr}, {p.buf(513)}}},
        {"get-id with device-readable data",
         Chain{0, {p.header(kBlkGetId, 0), p.buf(20)}, {p.buf(20), status}}},
        {"header outside RAM", Chain{0, {{1ull << 40, 16}}, {status}}},
    };
    for (const Case& c : cases)
        EXPECT_FALSE(parse_blk_request(c.chain, p.mem)) << c.what;
}

TEST(BlkParse, BoundsTheNumberOfSegments) {
    ParseRig p;
    for (std::size_t segments : {254u, 255u, 1000u}) {
        Chain c;
        c.readable = {p.header(kBlkIn, 0)};
        const Descriptor one = p.buf(512);
        c.writable.assign(segments, one);
        c.writable.push_back(p.buf(1));
        EXPECT_EQ(parse_blk_request(c, p.mem).has_value(), segments <= 254) << segments;
    }
}

// --- the device on an image ---

constexpr std::uint64_t kSectors = 64;
constexpr std::uint64_t kFeatures = kFeatureVersion1 | kFeatureEventIdx | kFeatureIndirectDesc;

struct BlkRig {
    GuestRing ring{256, 8 << 20};
    FakeWatcher watcher;
    UniqueFd kick{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    UniqueFd image{::memfd_create("stockade-test-disk", MFD_CLOEXEC)};
    std::unique_ptr<VirtioDevice> dev;
    std::vector<std::string> violations;
    int interrupts = 0;
    std::uint16_t next_desc = 0;

    std::uint64_t sectors;

    explicit BlkRig(bool read_only = false, std::string id = "stockade-disk-0",
                    std::uint64_t disk_sectors = kSectors)
        : sectors(disk_sectors) {
        EXPECT_EQ(::ftruncate(image.get(), static_cast<off_t>(sectors * kSectorSize)), 0);
        std::vector<std::uint8_t> pattern(sectors * kSectorSize);
        for (std::size_t i = 0; i < pattern.size(); ++i)
            pattern[i] = static_cast<std::uint8_t>(i * 7 + i / 512);
        EXPECT_EQ(::pwrite(image.get(), pattern.data(), pattern.size(), 0),
                  static_cast<ssize_t>(pattern.size()));
        auto d = Blk::create(UniqueFd(::dup(image.get())), read_only, std::move(id));
        EXPECT_TRUE(d) << d.error().message;
        dev = std::move(d).value();
        activate();
    }
    void activate() {
        const QueueSetup queues[] = {ring.setup()};
        const int kicks[] = {kick.get()}, calls[] = {-1};
        ActivateContext ctx{ring.mem(),
                            kFeatures,
                            queues,
                            kicks,
                            calls,
                            watcher,
                            [this](std::uint16_t) { ++interrupts; },
                            [this](std::string why) { violations.push_back(std::move(why)); }};
        auto r = dev->activate(ctx);
        ASSERT_TRUE(r) << r.error().message;
    }
    std::vector<std::uint8_t> file() const {
        std::vector<std::uint8_t> out(sectors * kSectorSize);
        EXPECT_EQ(::pread(image.get(), out.data(), out.size(), 0),
                  static_cast<ssize_t>(out.size()));
        return out;
    }

    struct Seg {
        std::uint64_t addr;
        std::uint32_t len;
        bool writable;
    };
    std::uint64_t header(std::uint32_t type, std::uint64_t sector) {
        const std::uint64_t at = ring.alloc(16);
        EXPECT_TRUE(ring.mem().write_obj(at, BlkHeader{type, 0, sector}));
        return at;
    }
    // Offers a chain of direct descriptors and kicks the device, as the event loop would.
    void submit(const std::vector<Seg>& segs) {
        offer(segs);
        kick_device();
    }
    // Offers a chain of direct descriptors without kicking.
    void offer(const std::vector<Seg>& segs) {
        const std::uint16_t head = next_desc;
        for (std::size_t i = 0; i < segs.size(); ++i) {
            const auto index = static_cast<std::uint16_t>((head + i) % ring.size());
            const bool last = i + 1 == segs.size();
            ring.desc(index, segs[i].addr, segs[i].len,
                      static_cast<std::uint16_t>((segs[i].writable ? kDescWrite : 0) |
                                                 (last ? 0 : kDescNext)),
                      static_cast<std::uint16_t>((index + 1) % ring.size()));
        }
        next_desc = static_cast<std::uint16_t>((head + segs.size()) % ring.size());
        ring.make_available(head);
    }
    void kick_device() {
        const std::uint64_t one = 1;
        ASSERT_EQ(::write(kick.get(), &one, 8), 8);
        ASSERT_TRUE(watcher.watching(kick.get()));
        watcher.fire(kick.get());
    }
    // A whole request; returns (status byte, used length) of the request just served.
    std::pair<std::uint8_t, std::uint32_t> request(std::uint32_t type, std::uint64_t sector,
                                                   std::vector<Seg> data) {
        const std::uint64_t status = ring.alloc(1);
        EXPECT_TRUE(ring.mem().write_obj<std::uint8_t>(status, 0xee));
        std::vector<Seg> segs = {{header(type, sector), 16, false}};
        segs.insert(segs.end(), data.begin(), data.end());
        segs.push_back({status, 1, true});
        const std::uint16_t used_before = ring.used_idx();
        submit(segs);
        EXPECT_EQ(ring.used_idx(), static_cast<std::uint16_t>(used_before + 1))
            << "the request was not completed";
        return {ring.mem().read_obj<std::uint8_t>(status).value(), ring.used_elem(used_before).len};
    }
    std::vector<std::uint8_t> guest_bytes(std::uint64_t at, std::size_t n) const {
        std::vector<std::uint8_t> out(n);
        EXPECT_TRUE(ring.mem().read(at, out));
        return out;
    }
};

TEST(Blk, ConfigurationReportsCapacityAndLimits) {
    BlkRig r;
    std::uint8_t cfg[24];
    r.dev->config_read(0, cfg);
    std::uint64_t capacity;
    std::uint32_t seg_max, blk_size;
    std::memcpy(&capacity, cfg, 8);
    std::memcpy(&seg_max, cfg + 12, 4);
    std::memcpy(&blk_size, cfg + 20, 4);
    EXPECT_EQ(capacity, kSectors);
    EXPECT_EQ(seg_max, 254u) << "queue size - 2 (header and status)";
    EXPECT_EQ(blk_size, 512u);
    std::uint8_t far[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    r.dev->config_read(0xff8, far);
    EXPECT_EQ(std::accumulate(far, far + 8, 0), 0);
    r.dev->config_read(20, far);  // straddles the end of the structure
    EXPECT_EQ(far[0], 0);
    EXPECT_EQ(far[1], 2) << "blk_size 512, second byte";
    EXPECT_EQ(far[4], 0);
    EXPECT_TRUE(r.dev->offered_features() & kBlkFeatureFlush);
    EXPECT_FALSE(r.dev->offered_features() & kBlkFeatureRo);
    EXPECT_TRUE(BlkRig(true).dev->offered_features() & kBlkFeatureRo);
}

TEST(Blk, WritesAndReadsRoundTripThroughTheImage) {
    BlkRig r;
    const std::uint64_t a = r.ring.alloc(512), b = r.ring.alloc(512);
    std::vector<std::uint8_t> data(1024);
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<std::uint8_t>(0xa5 ^ i);
    ASSERT_TRUE(r.ring.mem().write(a, std::span(data).first(512)));
    ASSERT_TRUE(r.ring.mem().write(b, std::span(data).subspan(512)));
    const auto [st, used] = r.request(kBlkOut, 3, {{a, 512, false}, {b, 512, false}});
    EXPECT_EQ(st, kBlkOk);
    EXPECT_EQ(used, 1u) << "a write returns only the status byte";
    const auto file = r.file();
    EXPECT_TRUE(std::equal(data.begin(), data.end(), file.begin() + 3 * 512));
    EXPECT_NE(file[2 * 512], data[0]) << "the sector before is untouched";

    // Read it back in differently sized pieces.
    const std::uint64_t x = r.ring.alloc(256), y = r.ring.alloc(512), z = r.ring.alloc(256);
    const auto [st2, used2] =
        r.request(kBlkIn, 3, {{x, 256, true}, {y, 512, true}, {z, 256, true}});
    EXPECT_EQ(st2, kBlkOk);
    EXPECT_EQ(used2, 1024u + 1);
    std::vector<std::uint8_t> back = r.guest_bytes(x, 256), mid = r.guest_bytes(y, 512),
                              tail = r.guest_bytes(z, 256);
    back.insert(back.end(), mid.begin(), mid.end());
    back.insert(back.end(), tail.begin(), tail.end());
    EXPECT_EQ(back, data);
    // The last sector of the disk is reachable.
    const std::uint64_t last = r.ring.alloc(512);
    EXPECT_EQ(r.request(kBlkIn, kSectors - 1, {{last, 512, true}}).first, kBlkOk);
    EXPECT_EQ(r.guest_bytes(last, 512), std::vector<std::uint8_t>(file.end() - 512, file.end()));
    EXPECT_TRUE(r.violations.empty());
    EXPECT_GT(r.interrupts, 0);
}

TEST(Blk, AReadOnlyDiskRefusesWritesWithoutTouchingTheImage) {
    BlkRig r(true);
    const auto before = r.file();
    const std::uint64_t a = r.ring.alloc(512);
    ASSERT_TRUE(r.ring.mem().write(a, std::vector<std::uint8_t>(512, 0x42)));
    EXPECT_EQ(r.request(kBlkOut, 0, {{a, 512, false}}).first, kBlkIoErr);
    EXPECT_EQ(r.file(), before);
    EXPECT_EQ(r.request(kBlkIn, 0, {{a, 512, true}}).first, kBlkOk) << "reads still work";
    EXPECT_EQ(r.guest_bytes(a, 512),
              std::vector<std::uint8_t>(before.begin(), before.begin() + 512));
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_TRUE(r.violations.empty());
}

TEST(Blk, StatsCountRequestsBytesFlushesAndFailures) {
    BlkRig r;
    EXPECT_EQ(r.dev->stats(),
              "0 reads (0 KiB), 0 writes (0 KiB), 0 flushes, 0 failed requests (0 oversized); "
              "0 flush requests; queue: kicks 0, served 0, interrupts 0, budget exhausted 0");
    const std::uint64_t a = r.ring.alloc(2048);
    EXPECT_EQ(r.request(kBlkOut, 0, {{a, 2048, false}}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkIn, 0, {{a, 1024, true}}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkIn, 4, {{a, 1024, true}}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkIn, kSectors, {{a, 512, true}}).first, kBlkIoErr);
    EXPECT_EQ(r.dev->stats(),
              "2 reads (2 KiB), 1 writes (2 KiB), 1 flushes, 1 failed requests (0 oversized); "
              "1 flush requests; queue: kicks 5, served 5, interrupts 1, budget exhausted 0");
    BlkRig ro(true);
    EXPECT_EQ(ro.request(kBlkOut, 0, {{ro.ring.alloc(512), 512, false}}).first, kBlkIoErr);
    EXPECT_EQ(ro.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_EQ(ro.dev->stats(),
              "0 reads (0 KiB), 0 writes (0 KiB), 0 flushes, 1 failed requests (0 oversized); "
              "1 flush requests; queue: kicks 2, served 2, interrupts 1, budget exhausted 0")
        << "a read-only disk has nothing to flush";
}

TEST(Blk, OutOfRangeSectorsFailWithoutTouchingTheImageOrGuest) {
    BlkRig r;
    const auto before = r.file();
    const std::uint64_t buf = r.ring.alloc(1024);
    const std::vector<std::uint8_t> marker(1024, 0x3c);
    struct Case {
        std::uint64_t sector;
        std::uint32_t len;
        const char* what;
    };
    const Case cases[] = {
        {kSectors, 512, "one past the last sector"},
        {kSectors - 1, 1024, "runs past the end"},
        {1ull << 55, 512, "sector * 512 wraps to 0"},
        {(1ull << 55) + 1, 512, "sector * 512 wraps to 512"},
        {~0ull, 512, "the largest sector"},
        {~0ull / 512, 512, "sector * 512 is just below 2^64"},
    };
    for (const Case& c : cases) {
        ASSERT_TRUE(r.ring.mem().write(buf, marker));
        EXPECT_EQ(r.request(kBlkOut, c.sector, {{buf, c.len, false}}).first, kBlkIoErr) << c.what;
        EXPECT_EQ(r.file(), before) << c.what;
        const auto [st, used] = r.request(kBlkIn, c.sector, {{buf, c.len, true}});
        EXPECT_EQ(st, kBlkIoErr) << c.what;
        EXPECT_EQ(used, 1u) << c.what << ": nothing was read";
        EXPECT_EQ(r.guest_bytes(buf, 1024), marker) << c.what;
    }
    EXPECT_TRUE(r.violations.empty()) << "a bad sector is an I/O error, not a broken driver";
}

TEST(Blk, LengthsThatAreNotWholeSectorsFail) {
    BlkRig r;
    const auto before = r.file();
    const std::uint64_t buf = r.ring.alloc(1024);
    for (std::uint32_t len : {1u, 100u, 511u, 513u, 1023u}) {
        EXPECT_EQ(r.request(kBlkOut, 0, {{buf, len, false}}).first, kBlkIoErr) << len;
        EXPECT_EQ(r.request(kBlkIn, 0, {{buf, len, true}}).first, kBlkIoErr) << len;
    }
    // Pieces that add up to whole sectors are fine.
    EXPECT_EQ(r.request(kBlkIn, 0, {{buf, 100, true}, {buf + 100, 412, true}}).first, kBlkOk);
    EXPECT_EQ(r.file(), before);
}

TEST(Blk, GetIdFillsUpToTwentyBytes) {
    BlkRig r(false, "disk-with-a-rather-long-serial-number");
    const std::uint64_t id = r.ring.alloc(32);
    ASSERT_TRUE(r.ring.mem().write(id, std::vector<std::uint8_t>(32, 0xff)));
    const auto [st, used] = r.request(kBlkGetId, 0, {{id, 32, true}});
    EXPECT_EQ(st, kBlkOk);
    EXPECT_EQ(used, 20u + 1);
    const auto got = r.guest_bytes(id, 32);
    EXPECT_EQ(std::string(got.begin(), got.begin() + 20), "disk-with-a-rather-l");
    EXPECT_EQ(got[20], 0xff) << "nothing past the 20 bytes";

    BlkRig s(false, "vda");
    const std::uint64_t small = s.ring.alloc(8);
    const auto [st2, used2] = s.request(kBlkGetId, 0, {{small, 8, true}});
    EXPECT_EQ(st2, kBlkOk);
    EXPECT_EQ(used2, 8u + 1) << "a short buffer gets what fits";
    const auto got2 = s.guest_bytes(small, 8);
    EXPECT_EQ(std::string(got2.begin(), got2.begin() + 3), "vda");
    EXPECT_EQ(got2[3], 0) << "short ids are NUL-padded";
}

TEST(Blk, FlushAndUnknownRequests) {
    BlkRig r;
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    for (std::uint32_t type : {2u, 3u, 5u, 11u, 13u, 0x42u, 0xffff'ffffu})
        EXPECT_EQ(r.request(type, 0, {}).first, kBlkUnsupported) << type;
    EXPECT_TRUE(r.violations.empty());
}

TEST(Blk, AMalformedRequestStopsTheDeviceUntilReset) {
    BlkRig r;
    const std::uint64_t buf = r.ring.alloc(512);
    // A read request without any writable buffer: there is nowhere to put the status.
    r.submit({{r.header(kBlkIn, 0), 16, false}, {buf, 512, false}});
    ASSERT_EQ(r.violations.size(), 1u);
    EXPECT_NE(r.violations[0].find("status"), std::string::npos) << r.violations[0];
    EXPECT_EQ(r.ring.used_idx(), 0);
    // Further kicks are ignored: the device waits for the driver to reset it.
    const std::uint64_t status = r.ring.alloc(1);
    r.submit({{r.header(kBlkFlush, 0), 16, false}, {status, 1, true}});
    EXPECT_EQ(r.ring.used_idx(), 0);
    EXPECT_EQ(r.violations.size(), 1u);
    r.dev->reset();
    EXPECT_FALSE(r.watcher.watching(r.kick.get()));
}

// The largest request Linux sends with seg_max = 254: header, 254 data segments and the
// status, 256 descriptors in one indirect table of a 256-entry queue.
TEST(Blk, ServesAMaximalIndirectRequest) {
    constexpr std::uint32_t kSegments = 254;
    BlkRig r(false, "big", kSegments);
    const std::uint64_t table = r.ring.alloc(16 * (kSegments + 2));
    const std::uint64_t data = r.ring.alloc(512ull * kSegments), status = r.ring.alloc(1);
    r.ring.put_desc(table, 0, r.header(kBlkIn, 0), 16, kDescNext, 1);
    // Sector i lands in the i-th segment, which the driver placed at the i-th page from
    // the end (scatter-gather is rarely in order).
    for (std::uint32_t i = 0; i < kSegments; ++i)
        r.ring.put_desc(table, 1 + i, data + 512ull * (kSegments - 1 - i), 512,
                        kDescWrite | kDescNext, static_cast<std::uint16_t>(2 + i));
    r.ring.put_desc(table, kSegments + 1, status, 1, kDescWrite);
    r.ring.desc(0, table, 16 * (kSegments + 2), kDescIndirect);
    r.ring.make_available(0);
    r.kick_device();
    EXPECT_TRUE(r.violations.empty()) << (r.violations.empty() ? "" : r.violations.front());
    ASSERT_EQ(r.ring.used_idx(), 1);
    EXPECT_EQ(r.ring.used_elem(0).len, 512u * kSegments + 1);
    EXPECT_EQ(r.ring.mem().read_obj<std::uint8_t>(status).value(), kBlkOk);
    const auto file = r.file();
    for (std::uint32_t i : {0u, 1u, kSegments - 1}) {
        const auto got = r.guest_bytes(data + 512ull * (kSegments - 1 - i), 512);
        EXPECT_TRUE(std::equal(got.begin(), got.end(), file.begin() + 512 * i)) << "sector " << i;
    }
}

TEST(Blk, ConfigurationAdvertisesSizeMax) {
    BlkRig r;
    EXPECT_TRUE(r.dev->offered_features() & kBlkFeatureSizeMax);
    EXPECT_TRUE(r.dev->offered_features() & kBlkFeatureSegMax);
    std::uint32_t size_max = 0;
    r.dev->config_read(8, std::span(reinterpret_cast<std::uint8_t*>(&size_max), 4));
    EXPECT_EQ(size_max, kBlkSizeMax);
    EXPECT_EQ(size_max, 64u * 1024);
    EXPECT_EQ(kBlkMaxRequestBytes, 254u * 64 * 1024);
}

// A segment over size_max fails its own request (the driver broke a limit it was told), not
// the device: the next request is served.
TEST(Blk, ASegmentOverSizeMaxFailsOnlyThatRequest) {
    constexpr std::uint64_t kDisk = 4 * kBlkSizeMax / kSectorSize;
    BlkRig r(false, "big", kDisk);
    const auto before = r.file();
    const std::uint32_t over = kBlkSizeMax + 512;
    const std::uint64_t buf = r.ring.alloc(over);
    const std::vector<std::uint8_t> marker(over, 0x5a);
    ASSERT_TRUE(r.ring.mem().write(buf, marker));
    const auto [st, used] = r.request(kBlkIn, 0, {{buf, over, true}});
    EXPECT_EQ(st, kBlkIoErr);
    EXPECT_EQ(used, 1u) << "nothing was read";
    EXPECT_EQ(r.guest_bytes(buf, over), marker);
    EXPECT_EQ(r.request(kBlkOut, 0, {{buf, over, false}}).first, kBlkIoErr);
    EXPECT_EQ(r.file(), before) << "nothing was written";
    // Over the limit in the second segment only.
    EXPECT_EQ(r.request(kBlkIn, 0, {{buf, 512, true}, {buf, over, true}}).first, kBlkIoErr);
    // Exactly size_max, and several of them, are fine.
    EXPECT_EQ(r.request(kBlkIn, 0, {{buf, kBlkSizeMax, true}}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkIn, 0, {{buf, kBlkSizeMax, true}, {buf, kBlkSizeMax, true}}).first,
              kBlkOk);
    EXPECT_TRUE(r.violations.empty()) << (r.violations.empty() ? "" : r.violations.front());
    EXPECT_NE(r.dev->stats().find("3 failed requests (3 oversized)"), std::string::npos)
        << r.dev->stats();
}

// Every flush used to be its own fdatasync: one turn's flushes now share one.
TEST(Blk, FlushesInOneTurnShareOneFdatasync) {
    BlkRig r;
    const std::uint64_t data = r.ring.alloc(512);
    std::vector<std::uint64_t> statuses;
    auto offer = [&](std::uint32_t type, std::vector<BlkRig::Seg> segs) {
        statuses.push_back(r.ring.alloc(1));
        ASSERT_TRUE(r.ring.mem().write_obj<std::uint8_t>(statuses.back(), 0xee));
        segs.insert(segs.begin(), BlkRig::Seg{r.header(type, 0), 16, false});
        segs.push_back({statuses.back(), 1, true});
        r.offer(segs);
    };
    offer(kBlkOut, {{data, 512, false}});
    for (int i = 0; i < 3; ++i)
        offer(kBlkFlush, {});
    offer(kBlkIn, {{data, 512, true}});
    r.kick_device();
    ASSERT_EQ(r.ring.used_idx(), 5) << "every request is answered in the turn";
    for (std::uint64_t at : statuses)
        EXPECT_EQ(r.ring.mem().read_obj<std::uint8_t>(at).value(), kBlkOk);
    EXPECT_EQ(r.ring.used_elem(4).len, 1u) << "a flush's chain comes back with its status";
    EXPECT_NE(r.dev->stats().find("1 flushes, 0 failed requests (0 oversized); 3 flush requests"),
              std::string::npos)
        << r.dev->stats();
    EXPECT_TRUE(r.violations.empty());
}

TEST(Blk, AFlushWithNothingWrittenSinceTheLastCostsNoFdatasync) {
    BlkRig r;
    auto fdatasyncs_and_requests = [&r] {
        const std::string s = r.dev->stats();
        const auto failed = s.find(" flushes, ");
        const auto requested = s.find(" flush requests");
        EXPECT_NE(failed, std::string::npos) << s;
        EXPECT_NE(requested, std::string::npos) << s;
        const auto from = s.rfind(' ', failed - 1) + 1, from2 = s.rfind(' ', requested - 1) + 1;
        return std::pair(std::stoi(s.substr(from, failed - from)),
                         std::stoi(s.substr(from2, requested - from2)));
    };
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_EQ(fdatasyncs_and_requests(), std::pair(0, 1)) << "nothing was written yet";
    const std::uint64_t a = r.ring.alloc(512);
    EXPECT_EQ(r.request(kBlkOut, 1, {{a, 512, false}}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_EQ(fdatasyncs_and_requests(), std::pair(1, 2));
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkIn, 1, {{a, 512, true}}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_EQ(fdatasyncs_and_requests(), std::pair(1, 4)) << "reads leave nothing to flush";
    EXPECT_EQ(r.request(kBlkOut, 2, {{a, 512, false}}).first, kBlkOk);
    EXPECT_EQ(r.request(kBlkFlush, 0, {}).first, kBlkOk);
    EXPECT_EQ(fdatasyncs_and_requests(), std::pair(2, 5));
}

// A driver that keeps one head available (re-posting it) gets kServeBudget chains per turn;
// the device signals its own kick eventfd, so the event loop serves the rest on later turns
// without a new kick from the guest.
TEST(Blk, ATurnServesAtMostTheBudgetAndTheQueueComesBackWithoutAKick) {
    BlkRig r;
    const std::uint64_t status = r.ring.alloc(1);
    r.ring.desc(0, r.header(kBlkFlush, 0), 16, kDescNext, 1);
    r.ring.desc(1, status, 1, kDescWrite);
    constexpr std::uint16_t kPosted = 3 * kServeBudget + 8;
    for (std::uint16_t i = 0; i < kPosted; ++i)
        r.ring.make_available(0);
    r.kick_device();
    EXPECT_EQ(r.ring.used_idx(), kServeBudget);
    for (std::uint16_t turn = 2; turn <= 4; ++turn) {
        ASSERT_TRUE(fake::readable(r.kick.get())) << "the queue asked to be served again";
        r.watcher.fire(r.kick.get());  // the loop's next turn
        EXPECT_EQ(r.ring.used_idx(), std::min<std::uint32_t>(turn * kServeBudget, kPosted)) << turn;
    }
    EXPECT_FALSE(fake::readable(r.kick.get())) << "drained: nothing more to come back for";
    const auto c = static_cast<QueueDevice&>(*r.dev).queue_counters().at(0);
    EXPECT_EQ(c.kicks, 1u) << "the device's own signals are not the driver's kicks";
    EXPECT_EQ(c.runs, 4u);
    EXPECT_EQ(c.budget_exhausted, 3u);
    EXPECT_NE(r.dev->stats().find("budget exhausted 3"), std::string::npos) << r.dev->stats();
    EXPECT_TRUE(r.violations.empty());
}

// Chains alone would let a turn hold 64 maximal requests (a GiB); bytes end it as well.
TEST(Blk, ATurnEndsOnceItHasMovedSixteenMiB) {
    constexpr std::uint64_t kRequest = 1 << 20;
    constexpr std::uint32_t kSegments = kRequest / kBlkSizeMax;
    BlkRig r(false, "big", kRequest / kSectorSize);
    const std::uint64_t buf = r.ring.alloc(kBlkSizeMax), status = r.ring.alloc(1);
    r.ring.desc(0, r.header(kBlkIn, 0), 16, kDescNext, 1);
    for (std::uint16_t i = 1; i <= kSegments; ++i)
        r.ring.desc(i, buf, kBlkSizeMax, kDescWrite | kDescNext, static_cast<std::uint16_t>(i + 1));
    r.ring.desc(kSegments + 1, status, 1, kDescWrite);
    constexpr std::uint16_t kPosted = kBlkTurnBytes / kRequest + 4;
    for (std::uint16_t i = 0; i < kPosted; ++i)
        r.ring.make_available(0);
    r.kick_device();
    EXPECT_EQ(r.ring.used_idx(), kBlkTurnBytes / kRequest);
    ASSERT_TRUE(fake::readable(r.kick.get()));
    r.watcher.fire(r.kick.get());
    EXPECT_EQ(r.ring.used_idx(), kPosted);
    EXPECT_EQ(r.ring.mem().read_obj<std::uint8_t>(status).value(), kBlkOk);
    EXPECT_EQ(static_cast<QueueDevice&>(*r.dev).queue_counters().at(0).budget_exhausted, 1u);
    EXPECT_TRUE(r.violations.empty());
}

TEST(Blk, CreateRefusesImagesThatAreNotWholeSectors) {
    UniqueFd odd(::memfd_create("odd", MFD_CLOEXEC));
    ASSERT_EQ(::ftruncate(odd.get(), 1000), 0);
    EXPECT_FALSE(Blk::create(std::move(odd), false, "x"));
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    UniqueFd rd(p[0]), wr(p[1]);
    EXPECT_FALSE(Blk::create(std::move(rd), false, "x")) << "a pipe is not a disk";
}

}  // namespace
}  // namespace stockade::virtio
