// stockade's own log lines: text for people, JSON lines for programs (--log-format json).
#include "base/log.hpp"

#include <gtest/gtest.h>

#include <regex>

#include <nlohmann/json.hpp>

namespace stockade {
namespace {

TEST(Log, TextLinesNameTheProgramAndTheLevel) {
    log::set_format(log::Format::text);
    EXPECT_EQ(log::format_line(log::Level::error, "it broke"), "stockade: error: it broke\n");
    EXPECT_EQ(log::format_line(log::Level::warn, "hm"), "stockade: warning: hm\n");
    EXPECT_EQ(log::format_line(log::Level::info, "fyi"), "stockade: fyi\n");
}

TEST(Log, JsonLinesAreOneObjectEachEvenForHostileBytes) {
    log::set_format(log::Format::json);
    const std::string line =
        log::format_line(log::Level::error, std::string("a \"quoted\"\nline \xff\x00 end", 23));
    log::set_format(log::Format::text);
    ASSERT_TRUE(line.ends_with("\n"));
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["level"], "error");
    EXPECT_TRUE(j["msg"].get<std::string>().starts_with("a \"quoted\"\nline "));
    EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
        << j["time"];
}

}  // namespace
}  // namespace stockade
