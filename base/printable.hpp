#pragma once
// Text from a user, a file or the guest, made safe to show to the operator.
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace stockade {

// On one line of an error message: bytes outside printable ASCII (and the backslash) as
// \xNN.
[[nodiscard]] inline std::string printable(std::string_view text) {
    std::string out;
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '\\')
            out += fmt::format("\\x{:02x}", u);
        else
            out.push_back(c);
    }
    return out;
}

// Lines of text the guest wrote (its kernel console), shown to the operator as lines:
// newlines and tabs stay, a carriage return just before a newline goes (the kernel's serial
// console ends its lines with "\r\n"), and every other byte below 0x20, DEL and every byte
// from 0x80 up become \xNN. So nothing the guest writes reaches the terminal as a control:
// no escape sequence (ESC), no C1 control (0x80-0x9f; the console is ASCII, so UTF-8 is
// escaped too), no bare carriage return to overwrite a line already shown. Fed in pieces
// (the console arrives a byte at a time): a CR at the end of one piece waits for the next.
class PrintableLines {
  public:
    [[nodiscard]] std::string feed(std::string_view text) {
        std::string out;
        for (char c : text) {
            if (cr_) {
                cr_ = false;
                if (c != '\n') out += "\\x0d";
            }
            const auto u = static_cast<unsigned char>(c);
            if (c == '\r')
                cr_ = true;
            else if (c == '\n' || c == '\t' || (u >= 0x20 && u < 0x7f))
                out.push_back(c);
            else
                out += fmt::format("\\x{:02x}", u);
        }
        return out;
    }
    // The end of the text: a CR still waiting for its newline is shown.
    [[nodiscard]] std::string finish() {
        const bool cr = cr_;
        cr_ = false;
        return cr ? "\\x0d" : "";
    }

  private:
    bool cr_ = false;
};

[[nodiscard]] inline std::string printable_lines(std::string_view text) {
    PrintableLines p;
    std::string out = p.feed(text);
    return out + p.finish();
}

}  // namespace stockade
