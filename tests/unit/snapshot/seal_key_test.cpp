// The seal key file: 32 raw bytes or 64 hex digits, its owner's alone; anything else is
// refused with the reason and, for permissions, the chmod that fixes it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "sealed_files.hpp"
#include "snapshot/seal_key.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade::snapshot {
namespace {

using test::Bytes;

class SealKeyFile : public ::testing::Test {
  protected:
    std::string write_key(std::string_view content, mode_t mode = 0600) {
        const std::string path = (dir_.path / "seal.key").string();
        std::ofstream(path, std::ios::binary | std::ios::trunc)
            .write(content.data(), static_cast<std::streamsize>(content.size()));
        EXPECT_EQ(::chmod(path.c_str(), mode), 0);
        return path;
    }
    stockade::test::TempDir dir_{"stockade-seal-key"};
};

const std::string kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

Bytes counting() {
    Bytes b(32);
    for (std::size_t i = 0; i < b.size(); ++i)
        b[i] = static_cast<std::uint8_t>(i);
    return b;
}

TEST_F(SealKeyFile, LoadsRawBytesAndHexDigits) {
    ASSERT_FALSE(dir_.path.empty());
    const auto expected = SealKey::from_bytes(counting());
    ASSERT_TRUE(expected);
    const Bytes raw = counting();
    std::string upper = kHex;
    for (auto& c : upper)
        c = static_cast<char>(std::toupper(c));
    for (const std::string& content :
         {std::string(raw.begin(), raw.end()), kHex, kHex + "\n", upper}) {
        auto key = SealKey::load(write_key(content));
        ASSERT_TRUE(key) << key.error().message;
        EXPECT_EQ(key->id(), expected->id());
        EXPECT_TRUE(std::equal(key->material().begin(), key->material().end(), raw.begin()));
    }
    // Owner-only modes narrower than 0600 are fine too.
    EXPECT_TRUE(SealKey::load(write_key(kHex, 0400)));
}

TEST_F(SealKeyFile, RefusesAWrongLength) {
    ASSERT_FALSE(dir_.path.empty());
    for (const std::string& content :
         {std::string(), std::string(31, 'k'), std::string(33, 'k'), kHex.substr(0, 63), kHex + "0",
          kHex + "\n\n", kHex + " ", std::string(32, 'k') + "\n", std::string(4096, 'k')}) {
        auto key = SealKey::load(write_key(content));
        ASSERT_FALSE(key) << content.size() << " bytes";
        EXPECT_NE(key.error().message.find(
                      "a key file holds exactly 32 raw bytes, or 64 hex digits and an optional "
                      "newline"),
                  std::string::npos)
            << key.error().message;
        EXPECT_NE(key.error().message.find(std::to_string(content.size()) + " bytes"),
                  std::string::npos)
            << key.error().message;
    }
}

TEST_F(SealKeyFile, RefusesSixtyFourBytesThatAreNotHex) {
    ASSERT_FALSE(dir_.path.empty());
    std::string content = kHex;
    content[17] = 'g';
    auto key = SealKey::load(write_key(content));
    ASSERT_FALSE(key);
    EXPECT_NE(key.error().message.find("not 64 hex digits"), std::string::npos)
        << key.error().message;
}

TEST_F(SealKeyFile, RefusesAFileGroupOrOthersMayAccess) {
    ASSERT_FALSE(dir_.path.empty());
    for (mode_t mode : {0640, 0604, 0620, 0602, 0610, 0601, 0644, 0666}) {
        const std::string path = write_key(kHex, mode);
        auto key = SealKey::load(path);
        ASSERT_FALSE(key) << std::oct << mode;
        const std::string& m = key.error().message;
        EXPECT_NE(m.find(fmt::format("mode {:04o}", mode)), std::string::npos) << m;
        EXPECT_NE(m.find("`chmod 600 " + path + "`"), std::string::npos) << m;
    }
}

TEST_F(SealKeyFile, RefusesWhatIsNotARegularFile) {
    ASSERT_FALSE(dir_.path.empty());
    auto key = SealKey::load(dir_.path.string());
    ASSERT_FALSE(key);
    EXPECT_NE(key.error().message.find("not a regular file"), std::string::npos);
    const std::string missing = (dir_.path / "none").string();
    key = SealKey::load(missing);
    ASSERT_FALSE(key);
    EXPECT_NE(key.error().message.find(missing), std::string::npos) << key.error().message;
}

TEST(SealKey, IdNamesTheKeyAndNothingElse) {
    const SealKey a = test::key_of(1), a2 = test::key_of(1), b = test::key_of(2);
    EXPECT_EQ(a.id(), a2.id());
    EXPECT_NE(a.id(), b.id());
    // The id is not the key's first bytes.
    EXPECT_FALSE(std::equal(a.id().begin(), a.id().end(), a.material().begin()));
    auto g1 = SealKey::generate(), g2 = SealKey::generate();
    ASSERT_TRUE(g1 && g2);
    EXPECT_NE(g1->id(), g2->id());
    EXPECT_FALSE(SealKey::from_bytes(Bytes(31, 1)));
    EXPECT_FALSE(SealKey::from_bytes(Bytes(33, 1)));
}

TEST(SealKey, AMovedFromKeyHoldsNoMaterial) {
    SealKey a = test::key_of(7);
    SealKey b = std::move(a);
    // The moved-from object is still destroyed; its bytes must be gone already.
    EXPECT_TRUE(std::all_of(a.material().begin(),
                            a.material().end(),  // NOLINT(bugprone-use-after-move)
                            [](std::uint8_t x) { return x == 0; }));
    EXPECT_TRUE(std::all_of(b.material().begin(), b.material().end(),
                            [](std::uint8_t x) { return x == 7; }));
}

TEST(SealKey, SnapshotIdsAreFresh) {
    auto a = new_snapshot_id(), b = new_snapshot_id();
    ASSERT_TRUE(a && b);
    EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace stockade::snapshot
