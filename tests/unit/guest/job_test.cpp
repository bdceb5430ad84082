// The job archive's one format: what build_job_archive writes, parse_job_files (the parser
// stockade-init runs) reads back unchanged, and what is malformed it refuses by name.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "guest/abi.hpp"
#include "guest/cpio.hpp"
#include "guest/job.hpp"

namespace stockade {
namespace {

using namespace std::string_literals;

// The job files as the kernel would unpack them from the archive.
JobFiles files_in(const std::vector<std::uint8_t>& archive) {
    std::vector<cpio::Entry> entries;
    EXPECT_TRUE(cpio::parse(archive, entries));
    JobFiles files;
    for (const cpio::Entry& e : entries) {
        const std::string path = "/" + e.path;
        if (path == guest_abi::kJobDir) {
            EXPECT_TRUE(S_ISDIR(e.mode));
            EXPECT_EQ(e.mode & 07777, 0700u);
            continue;
        }
        const JobFile* file = nullptr;
        for (const JobFile& f : kJobFiles)
            if (f.path == path) file = &f;
        if (file == nullptr) {
            ADD_FAILURE() << "the archive holds " << path << ", which no parser reads";
            continue;
        }
        EXPECT_TRUE(S_ISREG(e.mode)) << path;
        EXPECT_EQ(e.mode & 07777, 0600u) << path;
        EXPECT_FALSE(files.*file->member) << path << " twice";
        files.*file->member = std::string(e.data.begin(), e.data.end());
    }
    return files;
}

std::vector<Job> sample_jobs() {
    std::vector<Job> jobs;
    jobs.push_back(Job{{"true"}, {}, "/", "sandbox", {}, {}, {}});  // empty env, defaults
    // Binary-ish arguments: spaces, newlines, quotes, empty items, high bytes, '=' anywhere.
    jobs.push_back(Job{{"sh", "-c", "echo 'a b'\n\tprintf \"%s\" x\n", "", " ", "\xff\x01", "a=b"},
                       {"A=1", "B=x y", "C=", "D=line1\nline2", "E==", "F=\xc3\xa9"},
                       "/tmp/dir with spaces",
                       "box.example-1",
                       {},
                       {},
                       {}});
    jobs.push_back(Job{{"/bin/ls"}, {"PATH=/bin"}, "/root", "h", {"/dev/vda", false}, {}, {}});
    jobs.push_back(Job{{"cat"}, {}, "/", "ro-root", {"/dev/vdb", true}, {}, {}});
    jobs.push_back(Job{{"ping", "-c1", "10.0.0.1"},
                       {},
                       "/",
                       "net",
                       {},
                       JobNet{"02:1a:2b:3c:4d:5e", "169.254.10.2/16"},
                       {}});
    jobs.push_back(Job{{"cat"}, {}, "/", "vsock", {}, {}, 1027u});
    jobs.push_back(Job{{"x"},
                       {"TERM=dumb"},
                       "/srv",
                       std::string(64, 'h'),
                       {"/dev/vda", true},
                       JobNet{"ff:ff:ff:ff:ff:00", "0.0.0.0/32"},
                       0xffff'fffeu});
    jobs.push_back(Job{{"y"}, {}, "/", "one", {}, JobNet{"02:00:00:00:00:01", "10.1.2.3/1"}, 1u});
    jobs.push_back(Job{
        {"cni"}, {}, "/", "cni", {}, JobNet{"0a:58:0a:58:00:05", "10.88.0.5/16", "10.88.0.1"}, 1u});
    jobs.push_back(Job{{"sleep", "9"}, {}, "/", "created", {}, {}, 1028u, true});
    // An OCI container's process: everything set, and root with nothing but the defaults.
    JobProcess oci;
    oci.uid = 1000;
    oci.gid = 0xffff'fffe;
    oci.groups = {27, 0};
    oci.rlimits = {{7, 1024, 1024}, {4, 0, ~std::uint64_t{0}}, {15, 1, 2}};
    oci.caps = JobCaps{0xa80425fb, 0x400, 0x400, 0, ~std::uint64_t{0}};
    oci.no_new_privileges = true;
    oci.own_mounts = true;
    oci.mounts = {{"proc", "proc", "/proc", 0xe, ""},
                  {"tmpfs", "tmpfs", "/dev", 0x1000002, "mode=755,size=65536k"},
                  {"devpts", "devpts", "/dev/pts", 0xa, "newinstance,ptmxmode=0666"},
                  {"tmpfs", "", "/dir with spaces", 0, ""}};
    oci.masked = {"/proc/kcore", "/sys/firmware"};
    oci.readonly = {"/proc/sys"};
    oci.mounts.push_back({"copy", "127.0.0.1 localhost\n\0\t\xff"s, "/etc/hosts", 1, "0644"});
    oci.mounts.push_back({"copy", "", "/etc/empty", 0, "600"});
    oci.sysctl = {{"net.ipv4.ping_group_range", "0 0"}, {"kernel.x", ""}};
    oci.seccomp = std::string("\x06\x00\x00\x00\x00\x00\xff\x7f", 8);
    oci.umask = 022;
    oci.pids_max = 2048;
    jobs.push_back(Job{{"sh"}, {}, "/", "oci", {"/dev/vda", false}, {}, 7u, true, oci});
    jobs.push_back(Job{{"sh"}, {}, "/", "tty", {"/dev/vda", false}, {}, 7u, true, oci, true});
    jobs.push_back(
        Job{{"sh"}, {}, "/", "oci-root", {"/dev/vda", true}, {}, 7u, false, JobProcess{}});
    return jobs;
}

TEST(JobFiles, RoundTripsThroughTheArchive) {
    for (const Job& job : sample_jobs()) {
        const JobFiles files = files_in(build_job_archive(job));
        EXPECT_EQ(files, job_files(job));
        auto parsed = parse_job_files(files);
        ASSERT_TRUE(parsed) << job.argv.front() << ": " << parsed.error();
        EXPECT_EQ(*parsed, job) << job.argv.front();
    }
}

TEST(JobFiles, WritesTheDocumentedFiles) {
    Job job{{"sh", "-c", ""},
            {"A=1"},
            "/w",
            "h",
            {"/dev/vda", true},
            JobNet{"02:11:22:33:44:55", "169.254.10.2/24"},
            1027u};
    const JobFiles f = files_in(build_job_archive(job));
    EXPECT_EQ(f.argv, "sh\0-c\0\0"s);
    EXPECT_EQ(f.env, "A=1\0"s);
    EXPECT_EQ(f.workdir, "/w");
    EXPECT_EQ(f.hostname, "h");
    EXPECT_EQ(f.root, "/dev/vda ro");
    EXPECT_EQ(f.net, "02:11:22:33:44:55 169.254.10.2/24");
    EXPECT_EQ(f.vsock, "0000001027") << "ten digits: the size does not depend on the port";
    EXPECT_EQ(f.wait_start, std::nullopt) << "written only for a job that waits";
    job.root.read_only = false;
    job.wait_for_start = true;
    const JobFiles again = files_in(build_job_archive(job));
    EXPECT_EQ(again.root, "/dev/vda rw");
    EXPECT_EQ(again.wait_start, "wait");
    EXPECT_EQ(again.terminal, std::nullopt) << "written only for a job with a terminal";
    job.terminal = true;
    EXPECT_EQ(files_in(build_job_archive(job)).terminal, "pty");
}

TEST(JobFiles, OptionalFilesMayBeAbsent) {
    // Only argv is required; the rest keep Job's defaults (a console job in the initramfs).
    JobFiles files;
    files.argv = "true\0"s;
    auto job = parse_job_files(files);
    ASSERT_TRUE(job) << job.error();
    EXPECT_EQ(*job, (Job{{"true"}, {}, "/", "sandbox", {}, {}, {}}));
    files.env = ""s;
    EXPECT_EQ(parse_job_files(files)->env, std::vector<std::string>{});
}

// The refusal names the file and contains `fragment`.
void expect_refused(const JobFiles& files, std::string_view file, std::string_view fragment) {
    auto job = parse_job_files(files);
    ASSERT_FALSE(job) << "accepted a job with " << file << " malformed";
    EXPECT_EQ(job.error().rfind(std::string(file) + ": ", 0), 0u) << job.error();
    EXPECT_NE(job.error().find(fragment), std::string::npos) << job.error();
}

// A valid job's files with one of them replaced (nullopt: removed).
JobFiles with(std::optional<std::string> JobFiles::*member, std::optional<std::string> value) {
    JobFiles files = job_files(Job{{"true"}, {"A=1"}, "/", "h", {}, {}, {}});
    files.*member = std::move(value);
    return files;
}

TEST(JobFiles, RefusesAMalformedArgv) {
    using guest_abi::kJobArgv;
    expect_refused(with(&JobFiles::argv, std::nullopt), kJobArgv, "missing");
    expect_refused(with(&JobFiles::argv, ""), kJobArgv, "the command (the first item) is empty");
    expect_refused(with(&JobFiles::argv, "\0x\0"s), kJobArgv, "is empty");
    expect_refused(with(&JobFiles::argv, "true"), kJobArgv, "not NUL-terminated");
    expect_refused(with(&JobFiles::argv, "sh\0-c"s), kJobArgv, "not NUL-terminated");
}

TEST(JobFiles, RefusesAMalformedEnv) {
    using guest_abi::kJobEnv;
    expect_refused(with(&JobFiles::env, "A=1"), kJobEnv, "not NUL-terminated");
    expect_refused(with(&JobFiles::env, "A=1\0NOVALUE\0"s), kJobEnv,
                   "\"NOVALUE\" is not NAME=value");
    expect_refused(with(&JobFiles::env, "=x\0"s), kJobEnv, "is not NAME=value");
    expect_refused(with(&JobFiles::env, "\0"s), kJobEnv, "\"\" is not NAME=value");
}

TEST(JobFiles, RefusesAMalformedWorkdirOrHostname) {
    using guest_abi::kJobHostname, guest_abi::kJobWorkdir;
    expect_refused(with(&JobFiles::workdir, ""), kJobWorkdir, "not an absolute path");
    expect_refused(with(&JobFiles::workdir, "tmp"), kJobWorkdir, "\"tmp\" is not an absolute");
    expect_refused(with(&JobFiles::workdir, "/tmp\0"s), kJobWorkdir, "contains a NUL byte");
    expect_refused(with(&JobFiles::hostname, ""), kJobHostname, "not 1 to 64 bytes");
    expect_refused(with(&JobFiles::hostname, std::string(65, 'h')), kJobHostname,
                   "not 1 to 64 bytes");
    expect_refused(with(&JobFiles::hostname, "a\0b"s), kJobHostname, "contains a NUL byte");
}

TEST(JobFiles, RefusesAMalformedRoot) {
    using guest_abi::kJobRoot;
    for (const char* bad : {"", "/dev/vda", "/dev/vda rx", "/dev/vda  rw", " /dev/vda rw",
                            "/dev/vda rw ", "/dev/vda ro\n", "vda rw", " rw", "/dev/vda RW"})
        expect_refused(with(&JobFiles::root, bad), kJobRoot, "is not \"DEVICE ro|rw\"");
    expect_refused(with(&JobFiles::root, "/dev/vda\0 rw"s), kJobRoot, "contains a NUL byte");
    // The text is shown escaped, so the console line stays one line.
    expect_refused(with(&JobFiles::root, "/dev/vda ro\n"), kJobRoot, "\"/dev/vda ro\\x0a\"");
}

TEST(JobFiles, RefusesAMalformedNet) {
    using guest_abi::kJobNet;
    const std::string addr = " 169.254.10.2/16";
    for (const char* mac : {"02:1A:2B:3C:4D:5E", "02:1a:2b:3c:4d", "02:1a:2b:3c:4d:5e:6f",
                            "021a2b3c4d5e", "02-1a-2b-3c-4d-5e", "02:1a:2b:3c:4d:5g", ""})
        expect_refused(with(&JobFiles::net, mac + addr), kJobNet, "is not a MAC address");
    for (const char* ip :
         {"169.254.10.2", "169.254.10.2/0", "169.254.10.2/33", "169.254.10.256/16", "169.254.10/16",
          "169.254.10.2.1/16", "169.254.010.2/16", "169.254.10.2/016", "169.254.10.2/", "/16",
          "169.254.10.-2/16", "169.254.10.+2/16", "a.b.c.d/8", ""})
        expect_refused(with(&JobFiles::net, std::string("02:1a:2b:3c:4d:5e ") + ip), kJobNet,
                       "is not an address A.B.C.D/N");
    for (const char* bad :
         {"02:1a:2b:3c:4d:5e", "02:1a:2b:3c:4d:5e  169.254.10.2/16",
          "02:1a:2b:3c:4d:5e 169.254.10.2/16 10.0.0.1 x", "02:1a:2b:3c:4d:5e 169.254.10.2/16 ", ""})
        expect_refused(with(&JobFiles::net, bad), kJobNet, "is not \"MAC A.B.C.D/N [GATEWAY]\"");
    for (const char* gw : {"x", "10.0.0.1/8", "10.0.0.256", "10.0.0", "010.0.0.1"})
        expect_refused(with(&JobFiles::net, std::string("02:1a:2b:3c:4d:5e 169.254.10.2/16 ") + gw),
                       kJobNet, "is not a gateway address A.B.C.D");
}

TEST(JobFiles, RefusesAMalformedVsockPort) {
    using guest_abi::kJobVsock;
    for (const char* bad : {"", "0", "-1", "+5", " 5", "5 ", "5\n", "0x10", "1e3", "4294967295",
                            "4294967296", "99999999999999999999"})
        expect_refused(with(&JobFiles::vsock, bad), kJobVsock, "is not a port number");
    expect_refused(with(&JobFiles::vsock, "5\0"s), kJobVsock, "is not a port number");
}

TEST(JobFiles, RefusesAMalformedWaitStart) {
    using guest_abi::kJobWaitStart;
    for (const char* bad : {"", "Wait", "wait\n", " wait", "wai", "waitwait", "1"})
        expect_refused(with(&JobFiles::wait_start, bad), kJobWaitStart, "is not \"wait\"");
    expect_refused(with(&JobFiles::wait_start, "wait\0"s), kJobWaitStart, "\"wait\\x00\"");
    auto job = parse_job_files(with(&JobFiles::wait_start, "wait"));
    ASSERT_TRUE(job) << job.error();
    EXPECT_TRUE(job->wait_for_start);
    EXPECT_FALSE(parse_job_files(with(&JobFiles::wait_start, std::nullopt))->wait_for_start);
}

TEST(JobFiles, ATerminalIsPtyOverVsockOnly) {
    using guest_abi::kJobTerminal;
    for (const char* bad : {"", "PTY", "pty\n", "tty", "1"})
        expect_refused(with(&JobFiles::terminal, bad), kJobTerminal, "is not \"pty\"");
    JobFiles files = with(&JobFiles::terminal, "pty");
    expect_refused(files, kJobTerminal, "without vsock stdio");
    files.vsock = "0000001024";
    auto job = parse_job_files(files);
    ASSERT_TRUE(job) << job.error();
    EXPECT_TRUE(job->terminal);
    EXPECT_FALSE(parse_job_files(with(&JobFiles::terminal, std::nullopt))->terminal);
}

TEST(JobFiles, WritesTheProcessAsDocumentedLines) {
    JobProcess p;
    p.uid = 5;
    p.gid = 6;
    p.groups = {7};
    p.rlimits = {{7, 10, 20}};
    p.caps = JobCaps{0xff, 1, 2, 3, 0};
    p.no_new_privileges = true;
    p.own_mounts = true;
    p.mounts = {{"tmpfs", "shm", "/dev/shm", 0xe, "mode=1777"}};
    p.masked = {"/proc/kcore"};
    p.readonly = {"/proc/sys"};
    p.umask = 027;
    p.pids_max = 100;
    const JobFiles f = job_files(Job{{"true"}, {}, "/", "h", {}, {}, {}, false, p});
    EXPECT_EQ(f.process,
              "user\t5\t6\t7\nrlimit\t7\t10\t20\ncaps\tff\t1\t2\t3\t0\nno-new-privileges\n"
              "mounts\numask\t27\npids-max\t100\nmount\ttmpfs\tshm\t/dev/shm\te\tmode=1777\n"
              "masked\t/proc/kcore\nreadonly\t/proc/sys\n");
    EXPECT_FALSE(job_files(Job{{"true"}, {}, "/", "h", {}, {}, {}}).process)
        << "a job without process settings has no process file";
}

TEST(JobFiles, RefusesAMalformedProcess) {
    using guest_abi::kJobProcess;
    for (const char* bad : {"",
                            "user\t0\t0",
                            "user\t0\n\n",
                            "user\t0\n",
                            "user\t-1\t0\n",
                            "user\t0\t0\tx\n",
                            "user\t4294967296\t0\n",
                            "rlimit\t16\t1\t1\n",
                            "rlimit\t7\t2\t1\n",
                            "rlimit\t7\t1\n",
                            "caps\t1\t2\t3\t4\n",
                            "caps\tg\t0\t0\t0\t0\n",
                            "caps\t10000000000000000\t0\t0\t0\t0\n",
                            "no-new-privileges\tyes\n",
                            "mount\ttmpfs\tx\trelative\t0\t\n",
                            "mount\t\tx\t/a\t0\t\n",
                            "mount\ttmpfs\tx\t/a\tz\t\n",
                            "mount\ttmpfs\tx\t/a\t0\n",
                            "masked\tproc\n",
                            "readonly\t\n",
                            "setuid\t0\n",
                            "umask\t8\n",
                            "umask\t1000\n",
                            "umask\n",
                            "pids-max\t0\n",
                            "pids-max\t-1\n",
                            "pids-max\tx\n",
                            "user 0 0\n"})
        expect_refused(with(&JobFiles::process, bad), kJobProcess, "");
    expect_refused(with(&JobFiles::process, "mount\ttmpfs\tx\t/a\t0\t\n"), kJobProcess,
                   "mount lines without a mounts line");
    for (const char* bad :
         {"mounts\nmount\tcopy\t6\t/a\t0\t644\n", "mounts\nmount\tcopy\tAB\t/a\t0\t644\n",
          "mounts\nmount\tcopy\tzz\t/a\t0\t644\n", "mounts\nmount\tcopy\t00\t/a\t0\t9\n",
          "mounts\nmount\tcopy\t00\t/a\t0\t17777\n", "mounts\nmount\tcopy\t00\t/a\t0\t\n",
          "sysctl\tnet/../x\t1\n", "sysctl\t\t1\n", "sysctl\t.x\t1\n", "sysctl\tx\n", "seccomp\t\n",
          "seccomp\t0600\n", "seccomp\t06000000000000ff7\n"})
        expect_refused(with(&JobFiles::process, bad), kJobProcess, "is not a process line");
    expect_refused(with(&JobFiles::process, "seccomp\t" + std::string(2 * 8 * 4097, '0') + "\n"),
                   kJobProcess, "is not a process line");
    auto big = parse_job_files(
        with(&JobFiles::process,
             "mounts\nmount\tcopy\t" + std::string(2 * 65537, 'a') + "\t/a\t0\t644\n"));
    EXPECT_FALSE(big) << "a copied file is at most 64 KiB";
    expect_refused(with(&JobFiles::process, "user\t0\t0\0\n"s), kJobProcess, "contains a NUL byte");
    auto job = parse_job_files(with(&JobFiles::process, "no-new-privileges\nuser\t1\t2\n"));
    ASSERT_TRUE(job) << job.error();
    ASSERT_TRUE(job->process);
    EXPECT_EQ(job->process->uid, 1u);
    EXPECT_TRUE(job->process->no_new_privileges);
    EXPECT_FALSE(job->process->caps) << "no caps line: the capabilities are left alone";
}

TEST(JobFiles, VsockPortMayBeZeroPadded) {
    // A fixed-width port ("%010u") keeps the archive's size independent of the port.
    JobFiles files = with(&JobFiles::vsock, "0000001027");
    auto job = parse_job_files(files);
    ASSERT_TRUE(job) << job.error();
    EXPECT_EQ(job->vsock_port, 1027u);
    files.vsock = "4294967294";
    EXPECT_EQ(parse_job_files(files)->vsock_port, 0xffff'fffeu);
}

TEST(JobFiles, ParsesIpv4Prefixes) {
    auto p = parse_ipv4_prefix("169.254.10.2/16");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->address, 0xa9fe'0a02u);
    EXPECT_EQ(p->length, 16u);
    p = parse_ipv4_prefix("255.255.255.255/32");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->address, 0xffff'ffffu);
    EXPECT_EQ(p->length, 32u);
    p = parse_ipv4_prefix("0.0.0.0/1");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->address, 0u);
    EXPECT_FALSE(parse_ipv4_prefix("1.2.3.4"));
    EXPECT_FALSE(parse_ipv4_prefix("1.2.3.4/8/8"));
    EXPECT_FALSE(parse_ipv4_prefix("1.2.3.4 /8"));
    EXPECT_FALSE(parse_ipv4_prefix("1..3.4/8"));
}

}  // namespace
}  // namespace stockade
