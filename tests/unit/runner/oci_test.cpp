// The OCI runtime's pure parts: config.json onto the sandbox (containerd's default spec as it
// comes, each field stockade refuses named), mount options, the arguments of the sandbox it
// creates, and which command lines are a runtime's.
#include <gtest/gtest.h>

#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/cli/oci_runtime.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/oci/bundle.hpp"
#include "runner/oci/console.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade::oci {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// containerd 1.6's default spec (`ctr oci spec`), with the command ctr adds.
json containerd_default() {
    const std::vector<std::string> caps = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE"};
    return json{
        {"ociVersion", "1.0.2-dev"},
        {"process",
         {{"user", {{"uid", 0}, {"gid", 0}}},
          {"args", {"sh", "-c", "echo hi"}},
          {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
          {"cwd", "/"},
          {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
          {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
          {"noNewPrivileges", true}}},
        {"root", {{"path", "rootfs"}}},
        {"mounts",
         {{{"destination", "/proc"},
           {"type", "proc"},
           {"source", "proc"},
           {"options", {"nosuid", "noexec", "nodev"}}},
          {{"destination", "/dev"},
           {"type", "tmpfs"},
           {"source", "tmpfs"},
           {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
          {{"destination", "/dev/pts"},
           {"type", "devpts"},
           {"source", "devpts"},
           {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
          {{"destination", "/sys"},
           {"type", "sysfs"},
           {"source", "sysfs"},
           {"options", {"nosuid", "noexec", "nodev", "ro"}}}}},
        {"linux",
         {{"resources",
           {{"devices", {{{"allow", false}, {"access", "rwm"}}}},
            {"cpu", {{"shares", 1024}, {"cpus", ""}}}}},
          {"cgroupsPath", "/default/c1"},
          {"namespaces",
           {{{"type", "pid"}},
            {{"type", "ipc"}},
            {{"type", "uts"}},
            {{"type", "mount"}},
            {{"type", "network"}}}},
          {"maskedPaths", {"/proc/kcore", "/sys/firmware"}},
          {"readonlyPaths", {"/proc/sys"}}}}};
}

Result<Container> parse(const json& config) {
    return parse_config(config.dump(), "/run/bundle");
}

TEST(OciBundle, ContainerdsDefaultSpecMapsOntoTheSandbox) {
    auto c = parse(containerd_default());
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->process.args, (std::vector<std::string>{"sh", "-c", "echo hi"}));
    EXPECT_EQ(c->root, "/run/bundle/rootfs");
    EXPECT_FALSE(c->root_readonly);
    const JobProcess& p = c->process.settings;
    EXPECT_EQ(p.uid, 0u);
    ASSERT_TRUE(p.caps);
    EXPECT_EQ(p.caps->bounding, 0xa80425fbu);  // what runc gives these 14
    EXPECT_EQ(p.caps->effective, 0xa80425fbu);
    EXPECT_EQ(p.caps->inheritable, 0u);
    EXPECT_EQ(p.rlimits, (std::vector<JobRlimit>{{7, 1024, 1024}}));
    EXPECT_TRUE(p.no_new_privileges);
    EXPECT_TRUE(p.own_mounts);
    ASSERT_EQ(p.mounts.size(), 4u);
    EXPECT_EQ(p.mounts[1], (JobMount{"tmpfs", "tmpfs", "/dev", MS_NOSUID | MS_STRICTATIME,
                                     "mode=755,size=65536k"}));
    EXPECT_EQ(p.mounts[2].data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    EXPECT_EQ(p.mounts[3].flags, std::uint64_t{MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY});
    EXPECT_EQ(p.masked, (std::vector<std::string>{"/proc/kcore", "/sys/firmware"}));
    EXPECT_EQ(p.readonly, (std::vector<std::string>{"/proc/sys"}));
    EXPECT_FALSE(c->memory_mib);
    EXPECT_FALSE(c->vcpus);
}

// What podman's config.json adds to containerd's: a umask, a pids limit and its shared
// memory directory bound at /dev/shm (which the guest gets as a tmpfs of its own).
TEST(OciBundle, PodmansSpecMapsOntoTheSandbox) {
    json j = containerd_default();
    j["process"]["user"]["umask"] = 18;
    j["linux"]["resources"]["pids"] = {{"limit", 2048}};
    j["mounts"].push_back({{"destination", "/dev/shm"},
                           {"type", "bind"},
                           {"source", "/var/lib/containers/storage/x/userdata/shm"},
                           {"options", {"bind", "rprivate", "nosuid", "noexec", "nodev"}}});
    auto c = parse(j);
    ASSERT_TRUE(c) << c.error().message;
    const JobProcess& p = c->process.settings;
    EXPECT_EQ(p.umask, 022u);
    EXPECT_EQ(p.pids_max, 2048u);
    EXPECT_EQ(p.mounts.back(),
              (JobMount{"tmpfs", "shm", "/dev/shm", MS_NOSUID | MS_NOEXEC | MS_NODEV,
                        "mode=1777,size=65536k"}));
    EXPECT_TRUE(c->copy_sources.empty()) << "nothing of the host's directory is read";
    j["linux"]["resources"]["pids"] = {{"limit", -1}};
    EXPECT_EQ(parse(j)->process.settings.pids_max, std::nullopt) << "-1: no limit";
}

TEST(OciBundle, ResourcesAndAnnotationsSizeTheVm) {
    json j = containerd_default();
    j["linux"]["resources"]["memory"] = {{"limit", 300 * 1024 * 1024 + 1}};
    j["linux"]["resources"]["cpu"] = {{"quota", 150000}, {"period", 100000}};
    j["hostname"] = "web";
    j["root"]["readonly"] = true;
    auto c = parse(j);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->memory_mib, 301u) << "rounded up to whole MiB";
    EXPECT_EQ(c->vcpus, 2u) << "1.5 CPUs of quota: two vCPUs";
    EXPECT_TRUE(c->process.settings.read_only_root) << "the guest remounts it read-only";
    j["annotations"] = {{"io.stockade.vcpus", "3"},
                        {"io.stockade.memory_mib", "512"},
                        {"io.stockade.kernel", "/k"},
                        {"other", "kept"}};
    c = parse(j);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->vcpus, 3u) << "an annotation wins over the quota";
    EXPECT_EQ(c->memory_mib, 512u);
    EXPECT_EQ(c->annotations.at("other"), "kept");
    const auto args = create_args(*c, "c1", "/var/lib/x.ext4");
    EXPECT_EQ(args,
              (std::vector<std::string>{
                  "--id",       "c1",
                  "--rootfs",   "/var/lib/x.ext4",
                  "--memory",   "512",
                  "--vcpus",    "3",
                  "--workdir",  "/",
                  "--hostname", "web",
                  "--kernel",   "/k",
                  "--env",      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  "--",         "sh",
                  "-c",         "echo hi"}));
    auto parsed = parse_create_args(args);
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->spec.argv, c->process.args);
    EXPECT_EQ(parsed->spec.memory_mib, 512u);
    EXPECT_TRUE(parsed->spec.wait_for_start);
    for (const char* bad : {"0", "x", "255", "-1", ""}) {
        j["annotations"] = {{"io.stockade.vcpus", bad}};
        auto refused = parse(j);
        ASSERT_FALSE(refused) << bad;
        EXPECT_NE(refused.error().message.find("annotations.io.stockade.vcpus"), std::string::npos);
    }
}

TEST(OciBundle, WhatCannotBeHonouredIsRefusedByField) {
    struct Case {
        std::function<void(json&)> change;
        std::string field;
    };
    const std::vector<Case> cases = {
        {[](json& j) { j["ociVersion"] = "0.9"; }, "ociVersion"},
        {[](json& j) { j.erase("ociVersion"); }, "ociVersion"},
        {[](json& j) { j.erase("process"); }, "process: missing"},
        {[](json& j) { j["process"]["args"] = json::array(); }, "process.args"},
        {[](json& j) {
             j["process"]["args"] = {"sh", 1};
         },
         "process.args[1]: not a string"},
        {[](json& j) { j["process"]["env"] = {"NOVALUE"}; }, "process.env[0]"},
        {[](json& j) { j["process"]["cwd"] = "rel"; }, "process.cwd"},
        {[](json& j) { j["process"]["terminal"] = 1; }, "process.terminal: not a boolean"},
        {[](json& j) { j["process"]["user"]["uid"] = -1; }, "process.user.uid"},
        {[](json& j) { j["process"]["user"]["umask"] = 01000; }, "process.user.umask: not a mode"},
        {[](json& j) { j["process"]["user"]["umask"] = -1; }, "process.user.umask: not a mode"},
        {[](json& j) { j["process"]["capabilities"]["bounding"] = {"CAP_NOPE"}; },
         "process.capabilities.bounding: unknown capability CAP_NOPE"},
        {[](json& j) { j["process"]["rlimits"][0]["type"] = "RLIMIT_X"; }, "process.rlimits[0]"},
        {[](json& j) { j["process"]["rlimits"][0]["soft"] = 2048; }, "soft above hard"},
        {[](json& j) { j["process"]["selinuxLabel"] = "system_u:system_r:x"; },
         "process.selinuxLabel"},
        {[](json& j) { j["process"]["apparmorProfile"] = "p"; }, "process.apparmorProfile"},
        {[](json& j) { j["root"]["path"] = ""; }, "root.path"},
        {[](json& j) {
             j["hooks"] = {{"prestart", {{{"path", "/x"}}}}};
         },
         "hooks"},
        {[](json& j) { j["domainname"] = "d"; }, "domainname"},
        {[](json& j) {
             j["mounts"].push_back({{"destination", "/data"}, {"type", "bind"}, {"source", "srv"}});
         },
         "mounts[4].source: a bind mount needs an absolute host path"},
        {[](json& j) {
             j["mounts"].push_back({{"destination", "/n"}, {"type", "nfs"}});
         },
         "mounts[4].type"},
        {[](json& j) {
             j["mounts"].push_back({{"destination", "n"}, {"type", "tmpfs"}});
         },
         "mounts[4].destination"},
        {[](json& j) {
             j["linux"]["namespaces"].push_back({{"type", "user"}});
         },
         "linux.namespaces[5]: a user namespace"},
        {[](json& j) { j["linux"]["namespaces"][0]["path"] = "/proc/1/ns/pid"; },
         "linux.namespaces[0].path: joining an existing namespace"},
        {[](json& j) { j["linux"]["namespaces"][4]["path"] = "run/netns/cni-1"; },
         "linux.namespaces[4].path: \"run/netns/cni-1\" is not an absolute path"},
        {[](json& j) { j["linux"]["namespaces"][4]["path"] = "/run/netns/x,vhost=off"; },
         "linux.namespaces[4].path: \"/run/netns/x,vhost=off\" has a comma"},
        {[](json& j) {
             j["linux"]["uidMappings"] = {{{"containerID", 0}}};
         },
         "linux.uidMappings"},
        {[](json& j) {
             j["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_NOTIFY"}};
         },
         "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY needs a listener"},
        {[](json& j) {
             j["linux"]["seccomp"] = {
                 {"defaultAction", "SCMP_ACT_ALLOW"},
                 {"syscalls",
                  {{{"names", {"mkdir"}},
                    {"action", "SCMP_ACT_ERRNO"},
                    {"args", {{{"index", 0}, {"op", "SCMP_CMP_SOMETIMES"}}}}}}}};
         },
         "linux.seccomp.syscalls[0]: unknown operator"},
        {[](json& j) {
             j["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ALLOW"},
                                      {"flags", {"SECCOMP_FILTER_FLAG_TSYNC"}}};
         },
         "linux.seccomp.flags"},
        {[](json& j) {
             j["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ALLOW"},
                                      {"listenerPath", "/run/agent.sock"}};
         },
         "linux.seccomp.listenerPath"},
        {[](json& j) {
             j["linux"]["sysctl"] = {{"net/../x", "1"}};
         },
         "linux.sysctl.net/../x"},
        {[](json& j) {
             j["linux"]["sysctl"] = {{"kernel.x", 1}};
         },
         "linux.sysctl.kernel.x"},
        {[](json& j) {
             j["linux"]["devices"] = {{{"path", "/dev/fuse"}}};
         },
         "linux.devices"},
        {[](json& j) {
             j["linux"]["resources"]["pids"] = {{"limit", 10}, {"other", 1}};
         },
         "linux.resources.pids.other: is not supported"},
        {[](json& j) {
             j["linux"]["resources"]["pids"] = {{"limit", "10"}};
         },
         "linux.resources.pids.limit: not an integer"},
        {[](json& j) { j["linux"]["resources"]["cpu"]["shares"] = 512; },
         "linux.resources.cpu.shares"},
        {[](json& j) { j["linux"]["resources"]["cpu"]["cpus"] = "0-1"; },
         "linux.resources.cpu.cpus"},
        {[](json& j) {
             j["linux"]["resources"]["memory"] = {{"swap", 1}};
         },
         "linux.resources.memory.swap"},
        {[](json& j) { j["linux"]["maskedPaths"] = {"proc/kcore"}; }, "linux.maskedPaths"},
        {[](json& j) {
             j["windows"] = {{"layerFolders", {"x"}}};
         },
         "windows"},
    };
    for (const Case& k : cases) {
        json j = containerd_default();
        k.change(j);
        auto c = parse(j);
        ASSERT_FALSE(c) << "accepted: " << j.dump();
        EXPECT_NE(c.error().message.find(k.field), std::string::npos)
            << c.error().message << " (wanted " << k.field << ")";
    }
    EXPECT_FALSE(parse_config("{", "/b"));
    EXPECT_FALSE(parse_config("[]", "/b"));
}

TEST(OciBundle, SeccompIsCompiledForTheGuestToLoad) {
    json j = containerd_default();
    j["linux"]["seccomp"] = {
        {"defaultAction", "SCMP_ACT_ALLOW"},
        {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"}},
        {"syscalls",
         {{{"names", {"mkdir", "mkdirat", "no_such_syscall_at_all"}},
           {"action", "SCMP_ACT_ERRNO"},
           {"errnoRet", 13}},
          {{"names", {"personality"}},
           {"action", "SCMP_ACT_ERRNO"},
           {"args", {{{"index", 0}, {"value", 8}, {"op", "SCMP_CMP_NE"}}}}}}}};
    auto c = parse(j);
    ASSERT_TRUE(c) << c.error().message;
    const std::string& bpf = c->process.settings.seccomp;
    ASSERT_FALSE(bpf.empty());
    EXPECT_EQ(bpf.size() % 8, 0u) << "whole struct sock_filter instructions";
    // EACCES (13) is in the program as SECCOMP_RET_ERRNO | 13.
    bool found = false;
    for (std::size_t at = 0; at + 8 <= bpf.size(); at += 8) {
        std::uint32_t k = 0;
        std::memcpy(&k, bpf.data() + at + 4, 4);
        found = found || k == (0x00050000u | 13);
    }
    EXPECT_TRUE(found);
    // It travels to the guest unchanged.
    const Job job{{"x"}, {}, "/", "h", {}, {}, {}, false, c->process.settings};
    auto again = parse_job_files(job_files(job));
    ASSERT_TRUE(again) << again.error();
    EXPECT_EQ(again->process->seccomp, bpf);
}

TEST(OciBundle, SeccompArgumentsAreCheckedAndRepeatedOnesOred) {
    const auto profile = [](const json& args) {
        json j = containerd_default();
        j["linux"]["seccomp"] = {
            {"defaultAction", "SCMP_ACT_ALLOW"},
            {"syscalls",
             {{{"names", {"personality"}}, {"action", "SCMP_ACT_ERRNO"}, {"args", args}}}}};
        return parse(j);
    };
    for (const json& bad :
         {json{{"index", 0}}, json("x"),
          json::array({{{"index", 0}, {"value", "8"}, {"op", "SCMP_CMP_EQ"}}}),
          json::array({{{"index", 4294967296ull}, {"value", 8}, {"op", "SCMP_CMP_EQ"}}}),
          json::array({{{"index", 6}, {"op", "SCMP_CMP_EQ"}}})}) {
        auto c = profile(bad);
        ASSERT_FALSE(c) << bad.dump();
        EXPECT_NE(c.error().message.find("linux.seccomp.syscalls[0].args"), std::string::npos)
            << c.error().message;
    }
    auto one = profile(json::array({{{"index", 0}, {"value", 8}, {"op", "SCMP_CMP_EQ"}}}));
    auto two = profile(json::array({{{"index", 0}, {"value", 8}, {"op", "SCMP_CMP_EQ"}},
                                    {{"index", 0}, {"value", 9}, {"op", "SCMP_CMP_EQ"}}}));
    ASSERT_TRUE(one) << one.error().message;
    ASSERT_TRUE(two) << two.error().message;
    // Two rules (8 or 9), not one rule no call can match (8 and 9).
    EXPECT_GT(two->process.settings.seccomp.size(), one->process.settings.seccomp.size());
}

TEST(OciBundle, BoundFilesAreCopiedInAndDirectoriesRefused) {
    test::TempDir dir;
    const std::string hosts = (dir.path / "hosts").string();
    { std::ofstream(hosts) << "127.0.0.1 localhost\n"; }
    ::chmod(hosts.c_str(), 0640);
    json j = containerd_default();
    j["mounts"].push_back({{"destination", "/etc/hosts"},
                           {"type", "bind"},
                           {"source", hosts},
                           {"options", {"rbind", "ro"}}});
    j["linux"]["sysctl"] = {{"net.ipv4.ping_group_range", "0 0"}};
    auto c = parse(j);
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_EQ(c->copy_sources.size(), 1u);
    EXPECT_EQ(c->copy_sources[0].second, hosts);
    ASSERT_TRUE(read_copied_files(*c));
    const JobMount& m = c->process.settings.mounts.at(c->copy_sources[0].first);
    EXPECT_EQ(m, (JobMount{"copy", "127.0.0.1 localhost\n", "/etc/hosts", MS_RDONLY, "640"}));
    EXPECT_EQ(
        c->process.settings.sysctl,
        (std::vector<std::pair<std::string, std::string>>{{"net.ipv4.ping_group_range", "0 0"}}));

    const auto refused = [&](const std::string& source, const std::string& why) {
        json k = containerd_default();
        k["mounts"].push_back({{"destination", "/d"}, {"type", "bind"}, {"source", source}});
        auto parsed = parse(k);
        ASSERT_TRUE(parsed) << parsed.error().message;
        auto read = read_copied_files(*parsed);
        ASSERT_FALSE(read) << source;
        EXPECT_NE(read.error().message.find(why), std::string::npos) << read.error().message;
    };
    refused(dir.path.string(), "a directory cannot be bound in");
    fs::create_symlink(hosts, dir.path / "link");
    refused((dir.path / "link").string(), "the bind mount of");
    {
        std::ofstream big(dir.path / "big");
        big << std::string(64 * 1024 + 1, 'x');
    }
    refused((dir.path / "big").string(), "larger than 65536 bytes");
    refused((dir.path / "none").string(), "the bind mount of");
    ASSERT_EQ(::mkfifo((dir.path / "fifo").c_str(), 0600), 0);
    refused((dir.path / "fifo").string(), "not a regular file");  // and it did not block

    // No set-id bit of a host file's owner reaches the guest's root-owned copy; a file whose
    // size says 0 (as /proc's do) is read to its end.
    ::chmod(hosts.c_str(), 04755);
    json k = containerd_default();
    k["mounts"].push_back({{"destination", "/a"}, {"type", "bind"}, {"source", hosts}});
    k["mounts"].push_back({{"destination", "/b"}, {"type", "bind"}, {"source", "/proc/self/stat"}});
    auto setid = parse(k);
    ASSERT_TRUE(setid) << setid.error().message;
    ASSERT_TRUE(read_copied_files(*setid));
    EXPECT_EQ(setid->process.settings.mounts.at(setid->copy_sources[0].first).data, "755");
    EXPECT_FALSE(setid->process.settings.mounts.at(setid->copy_sources[1].first).source.empty());
}

// CNI's network namespace (what CRI and `ctr run --with-ns network:PATH` put in the config):
// the sandbox's network device is made there.
TEST(OciBundle, ACniNetworkNamespaceBecomesTheSandboxsNetwork) {
    json config = containerd_default();
    auto plain = parse(config);
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ(plain->network_namespace, "");
    for (const std::string& a : create_args(*plain, "c1", "/img"))
        EXPECT_NE(a, "--net") << "no namespace named: no network but loopback";
    config["linux"]["namespaces"][4]["path"] = "/var/run/netns/cni-1";
    auto c = parse(config);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->network_namespace, "/var/run/netns/cni-1");
    const auto args = create_args(*c, "c1", "/img");
    const auto net = std::find(args.begin(), args.end(), "--net");
    ASSERT_NE(net, args.end());
    EXPECT_EQ(*(net + 1), "netns=/var/run/netns/cni-1");
    auto run = parse_create_args(args);
    ASSERT_TRUE(run) << run.error().message;
    EXPECT_EQ(run->spec.device<NetKind>()->netns, "/var/run/netns/cni-1");
}

// Kubernetes (CRI): the pause container holds the pod's network namespace, and the pod's
// containers join it, and the pause container's IPC and UTS ones, by /proc/PID/ns/TYPE.
TEST(OciBundle, APodsPauseContainerHoldsItsNetworkAndItsContainersJoinIt) {
    json pause = containerd_default();
    pause["annotations"] = {{"io.kubernetes.cri.container-type", "sandbox"}};
    pause["linux"]["namespaces"][4]["path"] = "/var/run/netns/cni-1";
    auto p = parse(pause);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->network_namespace, "");
    EXPECT_EQ(p->pod_network_namespace, "/var/run/netns/cni-1");
    for (const std::string& a : create_args(*p, "pause", "/img"))
        EXPECT_NE(a, "--net") << "the pause container's guest takes no network";

    json app = containerd_default();
    app["annotations"] = {{"io.kubernetes.cri-o.ContainerType", "container"}};
    app["linux"]["namespaces"][1]["path"] = "/proc/42/ns/ipc";
    app["linux"]["namespaces"][2]["path"] = "/proc/42/ns/uts";
    app["linux"]["namespaces"][4]["path"] = "/proc/42/ns/net";
    auto a = parse(app);
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->network_namespace, "/proc/42/ns/net");
    EXPECT_EQ(a->pod_network_namespace, "");

    // Refused: such joins outside a pod, a path not of the pause container's form, and any
    // other namespace joined.
    const auto refused = [](const json& config, const std::string& says) {
        auto r = parse(config);
        ASSERT_FALSE(r) << config.dump();
        EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
    };
    json lone = app;
    lone.erase("annotations");
    refused(lone, "linux.namespaces[1].path: joining an existing ipc namespace");
    for (const char* path : {"/proc/42/ns/uts", "/run/ipc", "/proc//ns/ipc", "/proc/4x/ns/ipc"}) {
        json wrong = app;
        wrong["linux"]["namespaces"][1]["path"] = path;
        refused(wrong, "linux.namespaces[1].path: joining an existing ipc namespace");
    }
    json pid = app;
    pid["linux"]["namespaces"][0]["path"] = "/proc/42/ns/pid";
    refused(pid, "linux.namespaces[0].path: joining an existing namespace");
}

TEST(OciBundle, UnknownPropertiesAreIgnoredAsTheSpecAsks) {
    json j = containerd_default();
    j["futureField"] = {{"x", 1}};
    j["linux"]["futureField"] = true;
    j["process"]["futureField"] = "y";
    EXPECT_TRUE(parse(j));
}

TEST(OciBundle, MountOptionsSplitIntoFlagsAndData) {
    auto o = mount_options({"ro", "nosuid", "rw", "noexec", "mode=1777", "rprivate", "size=1m"});
    EXPECT_EQ(o.flags, std::uint64_t{MS_NOSUID | MS_NOEXEC}) << "rw clears an earlier ro";
    EXPECT_EQ(o.data, "mode=1777,size=1m") << "propagation has no meaning for the guest's mounts";
    EXPECT_FALSE(o.bind);
    EXPECT_TRUE(mount_options({"rbind", "ro"}).bind);
}

TEST(OciBundle, AnExecsProcessIsParsedAlone) {
    auto p = parse_process(R"({"args":["ls","-l"],"env":["A=1"],"cwd":"/tmp",
                               "user":{"uid":0,"gid":0},"noNewPrivileges":true})");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->args, (std::vector<std::string>{"ls", "-l"}));
    EXPECT_EQ(p->cwd, "/tmp");
    EXPECT_TRUE(p->settings.no_new_privileges);
    EXPECT_FALSE(parse_process(R"({"args":[]})"));
    EXPECT_TRUE(parse_process(R"({"args":["x"],"terminal":true})")->terminal);
    // The terminal's size to start with (docker exec -it sends it).
    const auto sized =
        parse_process(R"({"args":["x"],"terminal":true,"consoleSize":{"height":24,"width":80}})");
    ASSERT_TRUE(sized) << sized.error().message;
    EXPECT_EQ(sized->console_size, (std::pair<std::uint16_t, std::uint16_t>{24, 80}));
    EXPECT_FALSE(parse_process(R"({"args":["x"]})")->console_size);
    for (const char* bad : {R"({"args":["x"],"consoleSize":{"height":24}})",
                            R"({"args":["x"],"consoleSize":{"height":24,"width":65536}})",
                            R"({"args":["x"],"consoleSize":[24,80]})"}) {
        const auto p2 = parse_process(bad);
        ASSERT_FALSE(p2) << bad;
        EXPECT_NE(p2.error().message.find("process.consoleSize"), std::string::npos)
            << p2.error().message;
    }
}

TEST(OciBundle, CapabilityAndRlimitNamesAreLinuxs) {
    EXPECT_EQ(capability_number("CAP_CHOWN"), 0u);
    EXPECT_EQ(capability_number("CAP_NET_ADMIN"), 12u);
    EXPECT_EQ(capability_number("CAP_SYS_ADMIN"), 21u);
    EXPECT_EQ(capability_number("CAP_CHECKPOINT_RESTORE"), 40u);
    EXPECT_FALSE(capability_number("NET_ADMIN"));
    EXPECT_EQ(rlimit_number("RLIMIT_NOFILE"), 7u);
    EXPECT_EQ(rlimit_number("RLIMIT_RTTIME"), 15u);
    EXPECT_FALSE(rlimit_number("RLIMIT_NLIMITS"));
}

bool oci(const std::vector<std::string>& args) {
    return cli::is_oci_invocation(args);
}

// The host's end of a container's terminal: a raw slave for the sandbox, and the master sent
// over the console socket as an engine receives it (one message, one descriptor).
TEST(OciConsole, TheMasterGoesOverTheSocketAndTheSlaveIsRaw) {
    auto pty = open_console_pty();
    ASSERT_TRUE(pty) << pty.error().message;
    termios t{};
    ASSERT_EQ(::tcgetattr(pty->slave.get(), &t), 0);
    EXPECT_EQ(t.c_lflag & (ECHO | ICANON | ISIG), 0u) << "the guest's terminal does all that";
    EXPECT_EQ(t.c_oflag & OPOST, 0u) << "bytes pass unchanged (no \\n to \\r\\n twice)";

    test::TempDir dir;
    const std::string path = (dir.path / "console.sock").string();
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    ASSERT_TRUE(send_console_master(path, pty->master.get()));
    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char name[64] = {};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{name, sizeof name};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ASSERT_GT(::recvmsg(conn.get(), &msg, 0), 0);
    EXPECT_STREQ(name, "/dev/ptmx");
    const cmsghdr* c = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->cmsg_type, SCM_RIGHTS);
    int received = -1;
    std::memcpy(&received, CMSG_DATA(c), sizeof received);
    UniqueFd master(received);
    // What the sandbox writes on the slave, the engine reads on the master it received.
    ASSERT_EQ(::write(pty->slave.get(), "a\nb", 3), 3);
    char got[8] = {};
    ASSERT_EQ(::read(master.get(), got, sizeof got), 3);
    EXPECT_EQ(std::string(got, 3), "a\nb");
    // And the size it sets is the one the sandbox reads.
    const winsize ws{33, 77, 0, 0};
    ASSERT_EQ(::ioctl(master.get(), TIOCSWINSZ, &ws), 0);
    winsize seen{};
    ASSERT_EQ(::ioctl(pty->slave.get(), TIOCGWINSZ, &seen), 0);
    EXPECT_EQ(seen.ws_row, 33);
    EXPECT_EQ(seen.ws_col, 77);

    EXPECT_FALSE(send_console_master((dir.path / "absent.sock").string(), pty->master.get()));
    EXPECT_FALSE(send_console_master(std::string(200, 'x'), pty->master.get()));
}

TEST(OciCli, EnginesCommandLinesAreTheRuntimes) {
    // containerd's runc shim (go-runc): global flags first.
    EXPECT_TRUE(
        oci({"--root", "/run/containerd/runc/default", "--log", "/x/log.json", "--log-format",
             "json", "create", "--bundle", "/b", "--pid-file", "/p", "c1"}));
    EXPECT_TRUE(oci({"--root=/r", "kill", "c1", "9"}));
    EXPECT_TRUE(oci({"--systemd-cgroup", "start", "c1"}));
    EXPECT_TRUE(oci({"--debug", "delete", "c1"}));
    // Commands only the runtime has, and create/exec in runc's shape.
    EXPECT_TRUE(oci({"state", "c1"}));
    EXPECT_TRUE(oci({"delete", "--force", "c1"}));
    EXPECT_TRUE(oci({"features"}));
    EXPECT_TRUE(oci({"create", "-b", "/b", "c1"}));
    EXPECT_TRUE(oci({"--log-format", "json", "create", "--bundle=/b", "c1"}));
    EXPECT_TRUE(oci({"exec", "--process", "/p.json", "--detach", "c1"}));
    // stockade's own command lines stay its own.
    EXPECT_FALSE(oci({"run", "--", "state"}));
    EXPECT_FALSE(oci({"create", "--id", "x", "--", "sh", "--bundle"}));
    EXPECT_FALSE(oci({"--log-format", "json", "run", "true"}));
    EXPECT_FALSE(oci({"exec", "x", "--", "ls", "--process"}));
    EXPECT_FALSE(oci({"kill", "x", "TERM"}));
    EXPECT_FALSE(oci({"--version"}));
    EXPECT_FALSE(oci({}));
}

}  // namespace
}  // namespace stockade::oci
