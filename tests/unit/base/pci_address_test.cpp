// PCI addresses as users give them (`--device vfio=...`) and as sysfs lists them: the parser's
// acceptances and refusals, and the canonical form.
#include "base/pci_address.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace stockade {
namespace {

constexpr std::string_view kForm = "expected DDDD:BB:DD.F or BB:DD.F";

// The refusal names the text (as `shown`), the expected form and, when given, `why`.
void expect_refused(std::string_view text, std::string_view shown, std::string_view why = {}) {
    auto r = parse_pci_address(text);
    ASSERT_FALSE(r) << "accepted '" << text << "' as " << r->str();
    const std::string& msg = r.error().message;
    EXPECT_NE(msg.find(fmt::format("PCI address '{}'", shown)), std::string::npos) << msg;
    EXPECT_NE(msg.find(kForm), std::string::npos) << msg;
    EXPECT_NE(msg.find(why), std::string::npos) << msg;
    EXPECT_EQ(r.error().code, 0);
}

void expect_refused_plain(std::string_view text) {
    expect_refused(text, text);
}

TEST(vfio_pci_address, AcceptsTheLongForm) {
    auto a = parse_pci_address("0000:01:00.0");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(*a, (PciAddress{0, 1, 0, 0}));

    a = parse_pci_address("abcd:ef:1f.7");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->domain, 0xabcd);
    EXPECT_EQ(a->bus, 0xef);
    EXPECT_EQ(a->device, 0x1f);
    EXPECT_EQ(a->function, 7);

    a = parse_pci_address("1234:5a:0b.3");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(*a, (PciAddress{0x1234, 0x5a, 0x0b, 3}));

    a = parse_pci_address("ffff:ff:1f.7");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(*a, (PciAddress{0xffff, 0xff, 0x1f, 7}));
}

TEST(vfio_pci_address, AcceptsHexDigitsOfEitherCase) {
    auto upper = parse_pci_address("ABCD:EF:1F.7");
    auto mixed = parse_pci_address("aBcD:eF:1f.7");
    ASSERT_TRUE(upper) << upper.error().message;
    ASSERT_TRUE(mixed) << mixed.error().message;
    EXPECT_EQ(*upper, (PciAddress{0xabcd, 0xef, 0x1f, 7}));
    EXPECT_EQ(*mixed, *upper);
}

TEST(vfio_pci_address, AcceptsTheShortFormInDomainZero) {
    auto a = parse_pci_address("01:00.0");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(*a, (PciAddress{0, 1, 0, 0}));

    a = parse_pci_address("3A:1c.5");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(*a, (PciAddress{0, 0x3a, 0x1c, 5}));
}

TEST(vfio_pci_address, StrIsCanonicalLowercase) {
    EXPECT_EQ((PciAddress{0, 1, 0, 0}).str(), "0000:01:00.0");
    EXPECT_EQ((PciAddress{0xabcd, 0xef, 0x1f, 7}).str(), "abcd:ef:1f.7");
    EXPECT_EQ((PciAddress{0x10, 0x2, 0x3, 4}).str(), "0010:02:03.4");
    EXPECT_EQ(PciAddress{}.str(), "0000:00:00.0");
    EXPECT_EQ(parse_pci_address("AB:1F.3")->str(), "0000:ab:1f.3");
    EXPECT_EQ(parse_pci_address("FFFF:0A:0B.1")->str(), "ffff:0a:0b.1");
}

TEST(vfio_pci_address, EveryDeviceAndFunctionRoundTrips) {
    for (unsigned d = 0; d <= 0x1f; ++d)
        for (unsigned f = 0; f <= 7; ++f) {
            const PciAddress a{0x00c1, 0x82, static_cast<std::uint8_t>(d),
                               static_cast<std::uint8_t>(f)};
            auto back = parse_pci_address(a.str());
            ASSERT_TRUE(back) << a.str() << ": " << back.error().message;
            EXPECT_EQ(*back, a) << a.str();
        }
}

TEST(vfio_pci_address, OrdersByDomainBusDeviceFunction) {
    EXPECT_LT((PciAddress{0, 1, 0, 0}), (PciAddress{0, 1, 0, 1}));
    EXPECT_LT((PciAddress{0, 1, 0, 7}), (PciAddress{0, 1, 1, 0}));
    EXPECT_LT((PciAddress{0, 1, 0x1f, 7}), (PciAddress{0, 2, 0, 0}));
    EXPECT_LT((PciAddress{0, 0xff, 0x1f, 7}), (PciAddress{1, 0, 0, 0}));
    EXPECT_EQ((PciAddress{2, 3, 4, 5}), (PciAddress{2, 3, 4, 5}));
    EXPECT_NE((PciAddress{2, 3, 4, 5}), (PciAddress{2, 3, 4, 6}));
}

TEST(vfio_pci_address, RefusesEmptyText) {
    expect_refused_plain("");
}

TEST(vfio_pci_address, RefusesSpaces) {
    for (const char* bad : {" 01:00.0", "01:00.0 ", "01: 0.0", "0000:01:00. ", " 000:01:00.0",
                            "0000 01:00.0", "01 00.0"})
        expect_refused_plain(bad);
}

TEST(vfio_pci_address, RefusesSigns) {
    for (const char* bad : {"+1:00.0", "-1:00.0", "01:+0.0", "01:-1.0", "01:00.-", "01:00.+",
                            "+000:01:00.0", "-000:01:00.0", "0000:-1:00.0"})
        expect_refused_plain(bad);
}

TEST(vfio_pci_address, RefusesExtraCharacters) {
    for (const char* bad :
         {"0000:01:00.0x", "0000:01:00.00", "01:00.00", "0000:01:00.0.0", "0x01:00.0",
          "0x0000:01:00.0", "0000:01:00.0:", "01:00.0/", "0000:01:00.0/driver"})
        expect_refused_plain(bad);
}

TEST(vfio_pci_address, RefusesWiderPartsThatWouldOverflow) {
    // A 5-digit domain (Linux's VMD domains start at 10000) or a 3-digit bus does not fit.
    for (const char* bad : {"10000:01:00.0", "00000:01:00.0", "0000:100:00.0", "0000:001:00.0",
                            "0000:01:100.0", "100:00.0", "01:000.0", "01:00.10"})
        expect_refused_plain(bad);
}

TEST(vfio_pci_address, RefusesMissingOrNarrowParts) {
    for (const char* bad :
         {"01:00", "01:00.", "0000:01:00", "0000:01:00.", ":01:00.0", "01:.0", ":00.0", "1:00.0",
          "01:0.0", "0:01:00.0", "000:01:00.0", "0000::00.0", "0000:01", "0000", "0", ".", ":"})
        expect_refused_plain(bad);
}

TEST(vfio_pci_address, RefusesWrongSeparators) {
    for (const char* bad : {"01.00.0", "01:00:0", "0000.01:00.0", "0000:01.00.0", "0000-01-00-0",
                            "01-00.0", "0000_01:00.0"})
        expect_refused_plain(bad);
}

TEST(vfio_pci_address, RefusesNonHexDigits) {
    for (const char* bad :
         {"0g:00.0", "gggg:00:00.0", "0000:01:00.g", "0000:0z:00.0", "00:1 .0", "zz:zz.z"})
        expect_refused_plain(bad);
}

TEST(vfio_pci_address, RefusesDevicesAbove1f) {
    expect_refused("01:20.0", "01:20.0", "device 0x20 is above 0x1f");
    expect_refused("0000:00:ff.0", "0000:00:ff.0", "device 0xff is above 0x1f");
    expect_refused("0000:00:3F.1", "0000:00:3F.1", "device 0x3f is above 0x1f");
}

TEST(vfio_pci_address, RefusesFunctionsAbove7) {
    expect_refused("01:00.8", "01:00.8", "function 0x8 is above 7");
    expect_refused("0000:01:00.f", "0000:01:00.f", "function 0xf is above 7");
    expect_refused("01:1f.A", "01:1f.A", "function 0xa is above 7");
}

TEST(vfio_pci_address, ShowsUnprintableBytesEscaped) {
    using namespace std::string_view_literals;
    expect_refused("01:00.0\0"sv, "01:00.0\\x00");
    expect_refused("0000:01:00.0\n"sv, "0000:01:00.0\\x0a");
    expect_refused("01:0\x01.0"sv, "01:0\\x01.0");
    expect_refused("01:00.\xc3\xa9"sv, "01:00.\\xc3\\xa9");
}

}  // namespace
}  // namespace stockade
