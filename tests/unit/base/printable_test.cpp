// What the operator's terminal is shown of text from users and from the guest.
#include "base/printable.hpp"

#include <gtest/gtest.h>

namespace stockade {
namespace {

TEST(Printable, OneLineEscapesEverythingButPrintableAscii) {
    EXPECT_EQ(printable("sb-1"), "sb-1");
    EXPECT_EQ(printable("a\nb\\c\x1b"), "a\\x0ab\\x5cc\\x1b");
}

TEST(PrintableLines, KernelLinesStayAsTheyAre) {
    EXPECT_EQ(printable_lines("[    0.000000] Linux version 6.1\r\n[    0.1]\tok\r\n"),
              "[    0.000000] Linux version 6.1\n[    0.1]\tok\n");
}

// Escape and control sequences, C1 controls and a bare CR reach the terminal as text.
TEST(PrintableLines, ControlsFromTheGuestAreEscaped) {
    EXPECT_EQ(printable_lines("\x1b]0;owned\x07\x1b[2J\x1b[1;1H"),
              "\\x1b]0;owned\\x07\\x1b[2J\\x1b[1;1H");
    EXPECT_EQ(printable_lines("ok\rfake"), "ok\\x0dfake");
    EXPECT_EQ(printable_lines(std::string_view("\0\x7f\x9b\xc3\xa9\\", 6)),
              "\\x00\\x7f\\x9b\\xc3\\xa9\\");
    EXPECT_EQ(printable_lines("end\r"), "end\\x0d");
}

// The console arrives a byte at a time: a CR and its newline in different pieces.
TEST(PrintableLines, FedInPiecesAsWhole) {
    const std::string text = "a\r\nb\rc\x1b[m\r\n\r";
    PrintableLines p;
    std::string out;
    for (char c : text)
        out += p.feed(std::string_view(&c, 1));
    out += p.finish();
    EXPECT_EQ(out, printable_lines(text));
    EXPECT_EQ(out, "a\nb\\x0dc\\x1b[m\n\\x0d");
    EXPECT_EQ(p.finish(), "") << "finished: nothing waits";
}

}  // namespace
}  // namespace stockade
