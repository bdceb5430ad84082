// The exec stream's frames (runner/api/exec_stream.hpp), the control commands' command lines
// (runner/cli/control_args.hpp) and signal names (base/signal_name.hpp).
#include <gtest/gtest.h>

#include <signal.h>

#include "base/signal_name.hpp"
#include "runner/api/exec_stream.hpp"
#include "runner/cli/control_args.hpp"

namespace stockade {
namespace {

using api::ExecFrame;
using api::ExecFrameDecoder;

TEST(ExecStream, FramesRoundTripWhateverTheyAreSplitInto) {
    const std::string binary("a\0b\xff\n", 5);
    const std::string stream = api::exec_frame(ExecFrame::out, binary) +
                               api::exec_frame(ExecFrame::err, "err") +
                               api::exec_frame(ExecFrame::out, "") + api::exec_exit_frame(42);
    for (std::size_t step : {std::size_t{1}, std::size_t{3}, stream.size()}) {
        ExecFrameDecoder d;
        std::vector<ExecFrameDecoder::Frame> frames;
        for (std::size_t at = 0; at < stream.size(); at += step) {
            d.feed(std::string_view(stream).substr(at, step));
            for (;;) {
                auto f = d.next();
                ASSERT_TRUE(f) << f.error();
                if (!*f) break;
                frames.push_back(**f);
            }
        }
        ASSERT_EQ(frames.size(), 4u) << "step " << step;
        EXPECT_EQ(frames[0].kind, ExecFrame::out);
        EXPECT_EQ(frames[0].payload, binary);
        EXPECT_EQ(frames[1].kind, ExecFrame::err);
        EXPECT_EQ(frames[1].payload, "err");
        EXPECT_EQ(frames[2].payload, "");
        EXPECT_EQ(frames[3].kind, ExecFrame::exit);
        EXPECT_EQ(frames[3].status, 42);
        EXPECT_EQ(d.buffered(), 0u);
    }
}

TEST(ExecStream, FramesOutOfShapeAreRefused) {
    auto refused = [](std::string bytes) {
        ExecFrameDecoder d;
        d.feed(bytes);
        return !d.next().has_value();
    };
    EXPECT_TRUE(refused(std::string("\x04\0\0\0\0\0\0\0", 8)));       // unknown kind
    EXPECT_TRUE(refused(std::string("\x00\0\0\0\0\0\0\0", 8)));       // kind 0
    EXPECT_TRUE(refused(std::string("\x01\x01\0\0\0\0\0\0", 8)));     // padding not zero
    EXPECT_TRUE(refused(std::string("\x01\0\0\0\0\x01\0\x01", 8)));   // 64 KiB + 1
    EXPECT_TRUE(refused(std::string("\x03\0\0\0\0\0\0\x02xx", 10)));  // exit of 2 bytes
    EXPECT_TRUE(refused(api::exec_frame(ExecFrame::exit, std::string("\0\0\x01\0", 4))));
    ExecFrameDecoder partial;
    partial.feed(std::string("\x01\0\0\0\0\0\0\x05hi", 10));
    auto f = partial.next();
    ASSERT_TRUE(f);
    EXPECT_FALSE(*f) << "incomplete: nothing yet";
}

TEST(ExecStream, TheResponseHeadSaysWhatFollows) {
    const std::string head = api::exec_response_head();
    EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_NE(head.find("Content-Type: application/vnd.stockade.exec-stream\r\n"),
              std::string::npos);
    EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos);
    EXPECT_EQ(head.find("Content-Length"), std::string::npos);
    EXPECT_TRUE(head.ends_with("\r\n\r\n"));
}

TEST(SignalNames, NamesAndNumbers) {
    EXPECT_EQ(parse_signal("TERM"), SIGTERM);
    EXPECT_EQ(parse_signal("SIGKILL"), SIGKILL);
    EXPECT_EQ(parse_signal("sighup"), SIGHUP);
    EXPECT_EQ(parse_signal("usr1"), SIGUSR1);
    EXPECT_EQ(parse_signal("9"), 9);
    EXPECT_EQ(parse_signal("64"), 64);
    for (const char* bad : {"", "0", "65", "-1", "SIG", "NOPE", "9x", " 9", "SIGRTMIN"})
        EXPECT_FALSE(parse_signal(bad)) << bad;
}

std::vector<std::string> words(std::initializer_list<const char*> w) {
    return {w.begin(), w.end()};
}

TEST(ControlArgs, ExecTakesOptionsThenTheIdThenTheCommand) {
    auto a = cli::parse_exec_args(
        words({"-e", "A=1", "-i", "--workdir", "/srv", "sb1", "--", "sh", "-c", "echo $A"}));
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->id, "sb1");
    EXPECT_EQ(a->argv, words({"sh", "-c", "echo $A"}));
    EXPECT_EQ(a->env, words({"A=1"}));
    EXPECT_EQ(a->workdir, "/srv");
    EXPECT_TRUE(a->interactive);
    // Without "--", the command's own options stay the command's.
    auto b = cli::parse_exec_args(words({"sb1", "ls", "-l", "-e"}));
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->argv, words({"ls", "-l", "-e"}));
    EXPECT_FALSE(b->interactive);
    EXPECT_EQ(b->workdir, "/");
    auto help = cli::parse_exec_args(words({"--help"}));
    ASSERT_TRUE(help);
    EXPECT_NE(help->help.find("127"), std::string::npos);
    for (auto bad : {words({}), words({"sb1"}), words({"sb1", "--"}),
                     words({"--bogus", "sb1", "ls"}), words({"-bad-id", "ls"}),
                     words({"-e", "NOEQ", "sb1", "ls"}), words({"-w", "rel", "sb1", "ls"})})
        EXPECT_FALSE(cli::parse_exec_args(bad)) << ::testing::PrintToString(bad);
}

TEST(ControlArgs, KillStopPauseResumeStart) {
    auto k = cli::parse_control_args("kill", words({"sb1", "KILL"}));
    ASSERT_TRUE(k) << k.error().message;
    EXPECT_EQ(k->signal, SIGKILL);
    auto kd = cli::parse_control_args("kill", words({"sb1"}));
    ASSERT_TRUE(kd);
    EXPECT_EQ(kd->signal, SIGTERM);
    EXPECT_FALSE(cli::parse_control_args("kill", words({"sb1", "NOPE"})));
    auto s = cli::parse_control_args("stop", words({"--time", "3", "sb1"}));
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->time, 3);
    EXPECT_EQ(cli::parse_control_args("stop", words({"sb1"}))->time, 10);
    EXPECT_FALSE(cli::parse_control_args("stop", words({"-t", "-1", "sb1"})));
    for (const char* c : {"pause", "resume", "start"}) {
        auto r = cli::parse_control_args(c, words({"sb1"}));
        ASSERT_TRUE(r) << c;
        EXPECT_EQ(r->id, "sb1");
        EXPECT_FALSE(cli::parse_control_args(c, words({})));
        EXPECT_FALSE(cli::parse_control_args(c, words({"sb1", "extra"})));
        EXPECT_FALSE(cli::parse_control_args(c, words({"../x"})));
        EXPECT_FALSE(cli::parse_control_args(c, words({"--help"}))->help.empty());
    }
}

}  // namespace
}  // namespace stockade
