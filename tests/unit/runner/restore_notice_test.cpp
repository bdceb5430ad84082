// The supervisor's one read from a restored guest (VsockKind::answer_clock_request): init's
// one-byte request for the clock, answered with the wall clock; a guest that sends something
// else, nothing, or closes gets no answer and holds the supervisor at most a second.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "base/unique_fd.hpp"
#include "guest/control.hpp"
#include "runner/registry/vsock.hpp"

namespace stockade {
namespace {

namespace gc = guest_control;
using Clock = std::chrono::steady_clock;

struct Pair {
    UniqueFd host, guest;
};
Pair pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(RestoreNotice, TheClockRequestIsAnsweredWithTheWallClock) {
    auto p = pair();
    ASSERT_EQ(::write(p.guest.get(), &gc::kClockRequest, 1), 1);
    timespec before{};
    ::clock_gettime(CLOCK_REALTIME, &before);
    EXPECT_TRUE(VsockKind::answer_clock_request(p.host.get()));
    char reply[gc::kClockReplySize + 1];
    ASSERT_EQ(::read(p.guest.get(), reply, sizeof reply),
              static_cast<ssize_t>(gc::kClockReplySize));
    const auto c = gc::decode_clock(std::string_view(reply, gc::kClockReplySize));
    ASSERT_TRUE(c);
    EXPECT_GE(c->sec, before.tv_sec);
    EXPECT_LE(c->sec, before.tv_sec + 2);
}

TEST(RestoreNotice, AGuestThatAsksOtherwiseOrNotAtAllGetsNoAnswerWithinASecond) {
    {
        auto p = pair();  // another byte, and more after it: read one, answer none
        ASSERT_EQ(::write(p.guest.get(), "XTTTT", 5), 5);
        EXPECT_FALSE(VsockKind::answer_clock_request(p.host.get()));
        pollfd pf{p.guest.get(), POLLIN, 0};
        EXPECT_EQ(::poll(&pf, 1, 100), 0) << "no answer to a wrong request";
    }
    {
        auto p = pair();  // silent
        const auto t = Clock::now();
        EXPECT_FALSE(VsockKind::answer_clock_request(p.host.get()));
        EXPECT_GE(seconds_since(t), 0.9);
        EXPECT_LT(seconds_since(t), 2.5) << "the supervisor waits a second, not longer";
    }
    {
        auto p = pair();  // gone
        p.guest.reset();
        const auto t = Clock::now();
        EXPECT_FALSE(VsockKind::answer_clock_request(p.host.get()));
        EXPECT_LT(seconds_since(t), 0.5);
    }
}

}  // namespace
}  // namespace stockade
