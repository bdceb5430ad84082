// What `stockade run` accepts: CLI parsing, spec validation, and bad input end to end
// (these checks all happen before /dev/kvm is opened, so they run anywhere).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "guest/cpio.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/supervisor/sandbox_spec.hpp"
#include "tests/support/child.hpp"

namespace stockade {
namespace {

SandboxSpec good_spec() {
    SandboxSpec s;
    s.kernel = "/k";
    s.initrd = "/i";
    s.argv = {"true"};
    return s;
}

const HostLimits kHost{8ull << 30, 64};

TEST(Validate, AcceptsDefaults) {
    EXPECT_TRUE(validate(good_spec(), kHost));
}

TEST(Validate, RejectsEachBadFieldByName) {
    struct Case {
        const char* field;
        void (*change)(SandboxSpec&);
    };
    const Case cases[] = {
        {"--kernel", [](SandboxSpec& s) { s.kernel.clear(); }},
        {"--initrd", [](SandboxSpec& s) { s.initrd.clear(); }},
        {"no command", [](SandboxSpec& s) { s.argv.clear(); }},
        {"command name is empty", [](SandboxSpec& s) { s.argv = {""}; }},
        {"--vcpus", [](SandboxSpec& s) { s.vcpus = 0; }},
        {"--vcpus", [](SandboxSpec& s) { s.vcpus = 65; }},
        {"--memory", [](SandboxSpec& s) { s.memory_mib = 63; }},
        {"--memory", [](SandboxSpec& s) { s.memory_mib = 9000; }},
        {"--env", [](SandboxSpec& s) { s.env = {"NOEQUALS"}; }},
        {"--env", [](SandboxSpec& s) { s.env = {"=value"}; }},
        {"--workdir", [](SandboxSpec& s) { s.workdir = "relative"; }},
        {"--hostname", [](SandboxSpec& s) { s.hostname = "bad host"; }},
        {"--hostname", [](SandboxSpec& s) { s.hostname = std::string(65, 'a'); }},
        {"--cmdline", [](SandboxSpec& s) { s.extra_cmdline = "a\nb"; }},
    };
    for (const Case& c : cases) {
        SandboxSpec s = good_spec();
        c.change(s);
        auto r = validate(s, kHost);
        ASSERT_FALSE(r) << c.field;
        EXPECT_NE(r.error().message.find(c.field), std::string::npos) << r.error().message;
    }
}

TEST(Validate, VcpuLimitIsTheSmallerOfKvmAndTheAcpiLimit) {
    SandboxSpec s = good_spec();
    s.vcpus = 254;
    EXPECT_TRUE(validate(s, {8ull << 30, 1024}));
    s.vcpus = 255;
    EXPECT_FALSE(validate(s, {8ull << 30, 1024}));
}

// An installed stockade (PREFIX/bin/stockade) boots PREFIX/lib/stockade's kernel and
// initramfs; one run from elsewhere, or an install without them, the build tree's.
TEST(RunArgs, AnInstalledStockadeBootsItsInstalledKernelAndInitramfs) {
    namespace fs = std::filesystem;
    const fs::path prefix =
        fs::temp_directory_path() / ("stockade-prefix-" + std::to_string(::getpid()));
    fs::create_directories(prefix / "bin");
    fs::create_directories(prefix / "lib/stockade");
    std::ofstream(prefix / "lib/stockade/vmlinux") << "k";
    const std::string exe = (prefix / "bin/stockade").string();
    EXPECT_EQ(default_boot_file(exe, "vmlinux", "/build/guest/vmlinux"),
              (prefix / "lib/stockade/vmlinux").string());
    EXPECT_EQ(default_boot_file(exe, "initramfs.cpio", "/build/guest/initramfs.cpio"),
              "/build/guest/initramfs.cpio")
        << "not installed there: the build tree's";
    EXPECT_EQ(default_boot_file((prefix / "runner/stockade").string(), "vmlinux", "/b/vmlinux"),
              "/b/vmlinux")
        << "not in a bin directory (the build tree's runner/)";
    EXPECT_EQ(default_boot_file("", "vmlinux", "/b/vmlinux"), "/b/vmlinux");
    fs::create_directories(prefix / "lib/stockade/initramfs.cpio");  // a directory, not a file
    EXPECT_EQ(default_boot_file(exe, "initramfs.cpio", "/b/i"), "/b/i");
    fs::remove_all(prefix);
}

TEST(RunArgs, CommandAfterDoubleDashOrDirectly) {
    auto a = parse_run_args({"--vcpus", "2", "--", "sh", "-c", "echo -- hi", "--memory"});
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->spec.vcpus, 2u);
    EXPECT_EQ(a->spec.argv, (std::vector<std::string>{"sh", "-c", "echo -- hi", "--memory"}));
    auto b = parse_run_args({"--memory", "512", "ls", "-l", "--", "x"});
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->spec.memory_mib, 512u);
    EXPECT_EQ(b->spec.argv, (std::vector<std::string>{"ls", "-l", "--", "x"}));
}

TEST(RunArgs, HelpIsReturnedNotExecuted) {
    auto a = parse_run_args({"--help"});
    ASSERT_TRUE(a);
    EXPECT_NE(a->help.find("--vcpus"), std::string::npos);
    EXPECT_TRUE(a->spec.argv.empty());
}

TEST(RunArgs, DefaultsJustWork) {
    auto a = parse_run_args({"true"});
    ASSERT_TRUE(a);
    EXPECT_EQ(a->spec.vcpus, 1u);
    EXPECT_EQ(a->spec.memory_mib, 256u);
    EXPECT_EQ(a->spec.kernel, STOCKADE_TEST_VMLINUX);
    EXPECT_EQ(a->spec.initrd, STOCKADE_TEST_INITRD);
    EXPECT_EQ(a->spec.huge_pages, HugePages::transparent);
    EXPECT_EQ(a->spec.workdir, "/");
    EXPECT_EQ(a->spec.device<VsockKind>().stdio, StdioMode::automatic)
        << "vsock when the host has vhost-vsock";
}

TEST(RunArgs, StdioIsVsockOrSerial) {
    auto v = parse_run_args({"--stdio", "vsock", "true"});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->spec.device<VsockKind>().stdio, StdioMode::vsock);
    auto s = parse_run_args({"--stdio", "serial", "true"});
    ASSERT_TRUE(s);
    EXPECT_EQ(s->spec.device<VsockKind>().stdio, StdioMode::serial);
    EXPECT_FALSE(parse_run_args({"--stdio", "tcp", "true"}));
}

TEST(RunArgs, RejectsUnknownOptionsAndBadValues) {
    for (auto args : std::vector<std::vector<std::string>>{
             {"--bogus", "--", "true"},
             {"--vcpus", "two", "true"},
             {"--huge-pages", "maybe", "true"},
             {"--memory"},
         }) {
        auto r = parse_run_args(args);
        EXPECT_FALSE(r) << args.front();
    }
    auto r = parse_run_args({"--frobnicate", "true"});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("--frobnicate"), std::string::npos);
}

struct Outcome {
    int status;
    std::string err;
};

// Runs the real binary; these inputs are refused before KVM is touched.
Outcome run_stockade(std::vector<std::string> args) {
    args.insert(args.begin(), {STOCKADE_BINARY, "run"});
    auto run = test::run_program(args, 2);
    return {WIFEXITED(run.status) ? WEXITSTATUS(run.status) : -1, run.output};
}

std::string temp_file(const std::string& content) {
    char path[] = "/tmp/stockade-test.XXXXXX";
    int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
    return path;
}

TEST(BadInput, EachIsRefusedWithStatus125AndAClearMessage) {
    const std::string not_kernel = temp_file(std::string(8192, 'x'));
    // An initramfs whose modules are for another kernel than the default one.
    cpio::Writer other;
    other.add_file("lib/modules/9.9.9-other/kernel/virtio_pci.ko",
                   "\x7f"
                   "ELF");
    const auto other_bytes = other.finish();
    const std::string other_initrd = temp_file(std::string(other_bytes.begin(), other_bytes.end()));
    const std::string huge_initrd = temp_file("");
    ASSERT_EQ(::truncate(huge_initrd.c_str(), 300 << 20), 0);
    struct Case {
        std::vector<std::string> args;
        const char* message;
    };
    std::vector<Case> cases = {
        {{"--kernel", "/nonexistent/vmlinuz", "true"}, "open /nonexistent/vmlinuz: No such file"},
        {{"--kernel", not_kernel, "true"}, "neither a bzImage"},
        {{"--kernel", "/etc", "true"}, "not a regular file"},
        {{"--initrd", "/nonexistent/initrd", "true"}, "open /nonexistent/initrd"},
        {{"--initrd", huge_initrd, "true"}, "initrd"},
        {{"--initrd", other_initrd, "true"}, "was made for 9.9.9-other"},
        {{"--memory", "16", "true"}, "below the minimum"},
        {{"--memory", "99999999", "true"}, "more than this host"},
        {{"--vcpus", "0", "true"}, "at least 1"},
        {{"--vcpus", "300", "true"}, "--vcpus"},
        {{"--nope", "true"}, "unknown option --nope"},
        {{}, "no command given"},
    };
    // Asked for, vsock stdio is required: a host without vhost-vsock refuses it up front.
    if (::access("/dev/vhost-vsock", F_OK) != 0)
        cases.push_back({{"--stdio", "vsock", "true"}, "--stdio vsock: open /dev/vhost-vsock"});
    for (const Case& c : cases) {
        Outcome o = run_stockade(c.args);
        EXPECT_EQ(o.status, 125) << o.err;
        EXPECT_NE(o.err.find(c.message), std::string::npos)
            << "want '" << c.message << "' in: " << o.err;
    }
    ::unlink(not_kernel.c_str());
    ::unlink(huge_initrd.c_str());
    ::unlink(other_initrd.c_str());
}

TEST(BadInput, HelpExplainsAndSucceeds) {
    auto [st, out] = test::run_program({STOCKADE_BINARY, "run", "--help"}, 1);
    EXPECT_EQ(WEXITSTATUS(st), 0);
    for (const char* needle : {"--vcpus", "--memory", "--kernel", "125", "127", "126"})
        EXPECT_NE(out.find(needle), std::string::npos) << needle;
}

}  // namespace
}  // namespace stockade
