// open_netns: only a network namespace other than the host's is taken, and what is named is
// looked at before anything is opened for reading (a FIFO would block, a device could act).
#include "netsetup/netns.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "tests/support/temp_dir.hpp"

namespace stockade::net {
namespace {

void expect_refused(const std::string& path, const std::string& fragment) {
    auto fd = open_netns(path);
    ASSERT_FALSE(fd) << path;
    EXPECT_NE(fd.error().message.find(fragment), std::string::npos) << fd.error().message;
}

TEST(Netns, OnlyAnotherNetworkNamespaceIsTaken) {
    expect_refused("/proc/self/ns/net", "the host's own network namespace");
    expect_refused("/proc/self/ns/uts", "is not a network namespace");
    expect_refused("/etc/hostname", "is not a namespace");
    expect_refused("/nonexistent/netns", "No such file");
}

TEST(Netns, AFifoOrADeviceIsNeverOpened) {
    test::TempDir dir;
    const std::string fifo = (dir.path / "fifo").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const auto start = std::chrono::steady_clock::now();
    expect_refused(fifo, "is not a namespace");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
        << "opening the FIFO for reading would have waited for a writer";
    expect_refused("/dev/null", "is not a namespace");
}

TEST(Netns, TheJoiningThreadIsTheOnlyOneThatMoves) {
    // No other namespace to join without privileges: joining our own shows the thread runs and
    // its result comes back, and this thread's namespace is unchanged.
    const auto before = [] {
        struct stat st {};
        ::stat("/proc/thread-self/ns/net", &st);
        return st.st_ino;
    };
    const auto ino = before();
    const int self = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(self, 0);
    auto r = in_netns<int>(self, []() -> Result<int> { return 42; });
    ::close(self);
    if (!r) {
        EXPECT_NE(r.error().message.find("joining the network namespace"), std::string::npos);
    } else {
        EXPECT_EQ(*r, 42);
    }
    EXPECT_EQ(before(), ino);
}

}  // namespace
}  // namespace stockade::net
