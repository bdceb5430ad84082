// The sealed manifest binds a snapshot's parts together: a whole part dropped, replaced by
// another snapshot's or another copy, renamed, cut short or lengthened is refused before a
// chunk of it is read; the manifest itself is a sealed part like any other.
#include <gtest/gtest.h>

#include <string>

#include "sealed_files.hpp"
#include "snapshot/manifest.hpp"

namespace stockade::snapshot {
namespace {

using test::Bytes;

using test::kChunk;

class SealedManifest : public ::testing::Test {
  protected:
    void SetUp() override {
        state_ = test::seal(key_, id_, "state", state_plain_);
        memory_ = test::seal(key_, id_, "memory", memory_plain_, 256);
        const UniqueFd fd = test::memfd();
        const PartRecord parts[] = {state_.record, memory_.record};
        auto r = seal_manifest(fd.get(), key_, id_, parts, document_);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->name, "manifest");
        manifest_bytes_ = test::contents(fd.get());
    }
    Manifest open_it() {
        const UniqueFd fd = test::file_with(manifest_bytes_);
        auto m = open_manifest(fd.get(), key_, id_);
        EXPECT_TRUE(m) << m.error().message;
        return m ? std::move(*m) : Manifest{};
    }
    std::string part_refusal(const Bytes& bytes, std::string_view part) {
        const UniqueFd fd = test::file_with(bytes);
        auto r = verify_part(fd.get(), key_, open_it(), part);
        return r ? "" : r.error().message;
    }

    const SealKey key_ = test::key_of(0x41);
    const SnapshotId id_ = test::id_of(0x42);
    const Bytes state_plain_ = test::pattern(300, 1);
    const Bytes memory_plain_ = test::pattern(10 * 256 + 1, 2);
    const Bytes document_ = [] {
        const std::string json = R"({"version": 1, "vcpus": 1, "memory_mib": 256})";
        return Bytes(json.begin(), json.end());
    }();
    test::Sealed state_, memory_;
    Bytes manifest_bytes_;
};

TEST_F(SealedManifest, OpensWithEveryRecordAndTheDocument) {
    const Manifest m = open_it();
    EXPECT_EQ(m.snapshot_id, id_);
    EXPECT_EQ(m.document, document_);
    ASSERT_EQ(m.parts.size(), 2u);
    EXPECT_EQ(m.parts[0], state_.record);
    EXPECT_EQ(m.parts[1], memory_.record);
    ASSERT_NE(m.find("memory"), nullptr);
    EXPECT_EQ(m.find("memory")->chunk_count, 11u);
    EXPECT_EQ(m.find("disk-vda"), nullptr);
    // Without an expected id, the manifest is how a restore learns it.
    const UniqueFd fd = test::file_with(manifest_bytes_);
    auto learnt = open_manifest(fd.get(), key_);
    ASSERT_TRUE(learnt) << learnt.error().message;
    EXPECT_EQ(learnt->snapshot_id, id_);
}

TEST_F(SealedManifest, EachPartVerifiesAndReadsAgainstIt) {
    EXPECT_EQ(part_refusal(state_.bytes, "state"), "");
    EXPECT_EQ(part_refusal(memory_.bytes, "memory"), "");
    const Manifest m = open_it();
    const UniqueFd fd = test::file_with(memory_.bytes);
    auto r = open_part(fd.get(), key_, m, "memory");
    ASSERT_TRUE(r) << r.error().message;
    Bytes out(256);
    auto n = r->read_chunk(10, out);
    ASSERT_TRUE(n) << n.error().message;
    EXPECT_EQ(*n, 1u);
    EXPECT_EQ(out[0], memory_plain_.back());
    auto all = r->read_all(memory_plain_.size());
    ASSERT_TRUE(all);
    EXPECT_EQ(*all, memory_plain_);
}

TEST_F(SealedManifest, APartItDoesNotListIsRefused) {
    const test::Sealed disk = test::seal(key_, id_, "disk-vdb", test::pattern(10));
    EXPECT_EQ(part_refusal(disk.bytes, "disk-vdb"),
              "disk-vdb: not a part of this snapshot (the manifest has no record of it)");
}

TEST_F(SealedManifest, AWholePartFromAnotherSnapshotIsRefused) {
    // Another snapshot with the same key and the very same memory.
    const test::Sealed other = test::seal(key_, test::id_of(0x43), "memory", memory_plain_, 256);
    EXPECT_EQ(part_refusal(other.bytes, "memory"),
              "memory: from another snapshot (43434343434343434343434343434343, not "
              "42424242424242424242424242424242)");
}

TEST_F(SealedManifest, AnotherCopyOfAPartIsRefused) {
    // Sealed again under this snapshot (a retried write): authentic, but not what is listed.
    const test::Sealed again = test::seal(key_, id_, "memory", memory_plain_, 256);
    EXPECT_EQ(part_refusal(again.bytes, "memory"),
              "memory: not the copy of this part that the manifest records (sealed separately: "
              "its salt differs)");
}

TEST_F(SealedManifest, APartUnderAnotherNameIsRefused) {
    EXPECT_EQ(part_refusal(state_.bytes, "memory"),
              "memory: the file holds part 'state', not 'memory'");
    EXPECT_EQ(part_refusal(manifest_bytes_, "state"),
              "state: the file holds part 'manifest', not 'state'");
}

TEST_F(SealedManifest, AShortOrLongPartIsRefusedBeforeAChunkIsRead) {
    Bytes cut(memory_.bytes.begin(),
              memory_.bytes.begin() + static_cast<std::ptrdiff_t>(test::at_chunk(3, 256)));
    EXPECT_EQ(part_refusal(cut, "memory"),
              fmt::format("memory: truncated: 3 of 11 chunks present ({} of {} bytes)", cut.size(),
                          memory_.bytes.size()));
    cut.resize(cut.size() - 1);
    EXPECT_EQ(part_refusal(cut, "memory"),
              fmt::format("memory: truncated: 2 of 11 chunks present ({} of {} bytes)", cut.size(),
                          memory_.bytes.size()));
    Bytes longer = memory_.bytes;
    longer.push_back(0);
    EXPECT_EQ(part_refusal(longer, "memory"),
              fmt::format("memory: 1 bytes more than the manifest records (11 chunks, {} bytes)",
                          memory_.bytes.size()));
}

TEST_F(SealedManifest, EveryBitOfItIsChecked) {
    for (std::size_t bit = 0; bit < manifest_bytes_.size() * 8; ++bit) {
        Bytes b = manifest_bytes_;
        b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        const UniqueFd fd = test::file_with(b);
        ASSERT_FALSE(open_manifest(fd.get(), key_)) << "bit " << bit;
    }
}

TEST_F(SealedManifest, ItIsRefusedFromAnotherSnapshotOrUnderAnotherKey) {
    const UniqueFd fd = test::file_with(manifest_bytes_);
    auto m = open_manifest(fd.get(), key_, test::id_of(0x44));
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message.rfind("manifest: from another snapshot", 0), 0u)
        << m.error().message;
    m = open_manifest(fd.get(), test::key_of(0x40));
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message.rfind("manifest: sealed with a different key", 0), 0u)
        << m.error().message;
    // A part given as the manifest.
    const UniqueFd state = test::file_with(state_.bytes);
    m = open_manifest(state.get(), key_);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message, "manifest: the file holds part 'state', not 'manifest'");
}

TEST_F(SealedManifest, ItCutShortIsRefused) {
    const Bytes cut(manifest_bytes_.begin(), manifest_bytes_.end() - kTagSize - 1);
    const UniqueFd fd = test::file_with(cut);
    auto m = open_manifest(fd.get(), key_);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message.find("manifest: "), std::string::npos);
}

TEST(ManifestRecords, BadRecordsAreNotSealed) {
    const SealKey key = test::key_of(1);
    const UniqueFd fd = test::memfd();
    PartRecord a{.name = "state", .chunk_size = kChunk, .size = 100, .chunk_count = 2};
    PartRecord manifest = a;
    manifest.name = "manifest";
    PartRecord wrong_count = a;
    wrong_count.name = "memory";
    wrong_count.chunk_count = 3;
    PartRecord huge = a;
    huge.name = "huge";
    huge.size = kMaxPartSize + 1;
    PartRecord bad_name = a;
    bad_name.name = "../state";
    for (const auto& [parts, message] :
         std::vector<std::pair<std::vector<PartRecord>, std::string>>{
             {{a, a}, "manifest: part 'state' twice"},
             {{manifest}, "manifest: a part named 'manifest' besides it"},
             {{a, wrong_count}, "manifest: memory: 3 chunks for 100 bytes in chunks of 64"},
             {{huge}, "manifest: huge: 72057594037927937 bytes, more than a part may have"},
             {{bad_name},
              "manifest: part name '../state': a part name is letters, digits, '.', "
              "'_' and '-', and begins with a letter or digit"}}) {
        auto r = seal_manifest(fd.get(), key, test::id_of(1), parts, {});
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().message, message);
    }
    const PartRecord ok[] = {a};
    EXPECT_TRUE(encode_manifest(ok, Bytes(10)));
}

TEST(ManifestRecords, MalformedPlaintextIsRefused) {
    const SnapshotId id = test::id_of(1);
    const PartRecord a{.name = "state", .chunk_size = kChunk, .size = 100, .chunk_count = 2};
    const PartRecord parts[] = {a};
    const Bytes good = *encode_manifest(parts, Bytes{'{', '}'});
    auto m = decode_manifest(good, id);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->parts[0], a);
    EXPECT_EQ(m->document, (Bytes{'{', '}'}));
    EXPECT_FALSE(decode_manifest(Bytes(good.begin(), good.begin() + 15), id));
    Bytes b = good;
    b[0] = 'x';
    EXPECT_FALSE(decode_manifest(b, id));
    b = good;
    b[8] = 2;  // two records in room for one
    EXPECT_FALSE(decode_manifest(b, id));
    b = good;
    b[13] = 1;
    EXPECT_FALSE(decode_manifest(b, id));
    b = good;
    b[16 + 48] = 9;  // its chunk count
    EXPECT_FALSE(decode_manifest(b, id));
}

}  // namespace
}  // namespace stockade::snapshot
