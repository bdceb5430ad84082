// `stockade run --config-file`: Firecracker's JSON configuration mapped to stockade's options,
// every field accepted or refused by its JSON path, and the command line overriding the file.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "runner/cli/firecracker_config.hpp"
#include "runner/cli/run_args.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade {
namespace {

// Shaped like Firecracker's documented example configuration (written for this test).
constexpr const char* kExample = R"({
  "boot-source": {
    "kernel_image_path": "/images/vmlinux",
    "boot_args": "console=ttyS0 reboot=k panic=1",
    "initrd_path": "/images/initrd.cpio"
  },
  "drives": [
    {"drive_id": "rootfs", "path_on_host": "/images/rootfs.ext4", "is_root_device": true,
     "partuuid": null, "is_read_only": false, "cache_type": "Unsafe", "io_engine": "Sync",
     "rate_limiter": null},
    {"drive_id": "data", "path_on_host": "/images/data.img", "is_root_device": false,
     "is_read_only": true}
  ],
  "machine-config": {"vcpu_count": 2, "mem_size_mib": 1024, "smt": false,
                     "track_dirty_pages": false, "huge_pages": "None"},
  "cpu-config": null,
  "balloon": null,
  "network-interfaces": [],
  "mmds-config": null,
  "entropy": {"rate_limiter": null},
  "metrics": {"metrics_path": "/run/vm-metrics.json"}
})";

TEST(FirecrackerConfig, TheExampleMeansTheseOptions) {
    auto args = firecracker_config_args(kExample);
    ASSERT_TRUE(args) << args.error().message;
    EXPECT_EQ(*args,
              (std::vector<std::string>{
                  "--kernel", "/images/vmlinux", "--initrd", "/images/initrd.cpio", "--cmdline",
                  "console=ttyS0 reboot=k panic=1", "--vcpus", "2", "--memory", "1024",
                  "--huge-pages", "off", "--rootfs", "/images/rootfs.ext4", "--disk",
                  "/images/data.img,ro", "--rng", "--metrics-path", "/run/vm-metrics.json"}));
}

TEST(FirecrackerConfig, TheLoggerIsStockadesLogFileAndLevel) {
    const std::string boot = R"("boot-source": {"kernel_image_path": "/k"})";
    auto args = firecracker_config_args(
        "{" + boot +
        R"(, "logger": {"log_path": "/run/vm.log", "level": "Trace", "show_level": true,
                        "show_log_origin": false, "module": null}})");
    ASSERT_TRUE(args) << args.error().message;
    EXPECT_EQ(*args, (std::vector<std::string>{"--kernel", "/k", "--log-path", "/run/vm.log",
                                               "--log-level", "debug"}));
    for (auto [fc, ours] : {std::pair{"Error", "error"}, std::pair{"Warning", "warning"},
                            std::pair{"Info", "info"}, std::pair{"Debug", "debug"}}) {
        auto a = firecracker_config_args("{" + boot + R"(, "logger": {"level": ")" + fc + R"("}})");
        ASSERT_TRUE(a) << a.error().message;
        EXPECT_EQ(a->back(), ours);
    }
}

TEST(FirecrackerConfig, ANetworkInterfaceIsAnExistingTap) {
    const std::string boot = R"("boot-source": {"kernel_image_path": "/k"})";
    auto args = firecracker_config_args(
        "{" + boot +
        R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
              "guest_mac": "06:00:ac:10:00:02", "rx_rate_limiter": null}]})");
    ASSERT_TRUE(args) << args.error().message;
    EXPECT_EQ(*args, (std::vector<std::string>{"--kernel", "/k", "--net",
                                               "tap=tap0,mac=06:00:ac:10:00:02"}));
    auto no_mac = firecracker_config_args(
        "{" + boot + R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}]})");
    ASSERT_TRUE(no_mac) << no_mac.error().message;
    EXPECT_EQ(no_mac->back(), "tap=tap0");

    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string file = (dir.path / "vm.json").string();
    std::ofstream(file) << "{" << boot
                        << R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
                              "guest_mac": "06:00:ac:10:00:02"}]})";
    auto a = parse_run_args({"--config-file", file, "true"});
    ASSERT_TRUE(a) << a.error().message;
    const auto& net = a->spec.device<NetKind>();
    ASSERT_TRUE(net.has_value());
    EXPECT_TRUE(net->existing_tap);
    EXPECT_EQ(net->netsetup, "tap=tap0,mac=06:00:ac:10:00:02");
}

TEST(FirecrackerConfig, RunReadsTheFileAndTheCommandLineOverridesIt) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string file = (dir.path / "vm.json").string();
    std::ofstream(file) << kExample;
    auto a = parse_run_args({"--config-file", file, "--memory", "512", "--", "echo", "hi"});
    ASSERT_TRUE(a) << a.error().message;
    const SandboxSpec& s = a->spec;
    EXPECT_EQ(s.kernel, "/images/vmlinux");
    EXPECT_EQ(s.initrd, "/images/initrd.cpio");
    EXPECT_EQ(s.vcpus, 2u);
    EXPECT_EQ(s.memory_mib, 512u) << "the command line comes after the file";
    EXPECT_EQ(s.huge_pages, HugePages::off);
    const auto& blk = s.device<BlkKind>();
    ASSERT_EQ(blk.disks.size(), 2u);
    EXPECT_TRUE(blk.rootfs);
    EXPECT_EQ(blk.disks[0], (DiskSpec{"/images/rootfs.ext4", false}));
    EXPECT_EQ(blk.disks[1], (DiskSpec{"/images/data.img", true}));
    EXPECT_TRUE(s.device<RngKind>().enabled);
    EXPECT_EQ(s.metrics_path, "/run/vm-metrics.json");
    EXPECT_EQ(s.argv, (std::vector<std::string>{"echo", "hi"}));

    auto eq = parse_run_args({"--config-file=" + file, "--vcpus", "1", "true"});
    ASSERT_TRUE(eq) << eq.error().message;
    EXPECT_EQ(eq->spec.vcpus, 1u);

    auto missing = parse_run_args({"--config-file", (dir.path / "none.json").string(), "true"});
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("none.json"), std::string::npos);
    std::ofstream(file) << R"({"boot-source": {"kernel_image_path": "/k"}, "vsock": {}})";
    auto refused = parse_run_args({"--config-file", file, "true"});
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find(file), std::string::npos) << "names the file";
    EXPECT_NE(refused.error().message.find("/vsock"), std::string::npos) << "and the path";
}

struct Refusal {
    const char* what;
    const char* json;
    const char* path;
    const char* says;
};

class FirecrackerConfigRefuses : public ::testing::TestWithParam<Refusal> {};

TEST_P(FirecrackerConfigRefuses, NamingThePath) {
    const Refusal& r = GetParam();
    auto args = firecracker_config_args(r.json);
    ASSERT_FALSE(args) << r.what;
    const std::string& m = args.error().message;
    EXPECT_NE(m.find(std::string("config file: ") + r.path + ":"), std::string::npos) << m;
    EXPECT_NE(m.find(r.says), std::string::npos) << m;
}

#define BOOT R"("boot-source": {"kernel_image_path": "/k"})"
// clang-format off
const Refusal kRefusals[] = {
    {"no boot source", R"({})", "/boot-source", "missing"},
    {"no kernel", R"({"boot-source": {}})", "/boot-source/kernel_image_path", "missing"},
    {"unknown top field", R"({)" BOOT R"(, "gpu": {}})", "/gpu", "unknown field"},
    {"unknown boot field", R"({"boot-source": {"kernel_image_path": "/k", "x": 1}})", "/boot-source/x", "unknown field"},
    {"kernel not a string", R"({"boot-source": {"kernel_image_path": 3}})", "/boot-source/kernel_image_path", "expected a string"},
    {"pci=off", R"({"boot-source": {"kernel_image_path": "/k", "boot_args": "console=ttyS0 pci=off"}})", "/boot-source/boot_args", "pci=off"},
    {"no vcpus", R"({)" BOOT R"(, "machine-config": {"mem_size_mib": 128}})", "/machine-config/vcpu_count", "missing"},
    {"negative memory", R"({)" BOOT R"(, "machine-config": {"vcpu_count": 1, "mem_size_mib": -1}})", "/machine-config/mem_size_mib", "positive integer"},
    {"smt", R"({)" BOOT R"(, "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "smt": true}})", "/machine-config/smt", "multithreading"},
    {"dirty pages", R"({)" BOOT R"(, "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "track_dirty_pages": true}})", "/machine-config/track_dirty_pages", "not supported"},
    {"cpu template", R"({)" BOOT R"(, "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "T2"}})", "/machine-config/cpu_template", "CPU templates"},
    {"huge pages 1G", R"({)" BOOT R"(, "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "huge_pages": "1G"}})", "/machine-config/huge_pages", "\"None\" or \"2M\""},
    {"drives not a list", R"({)" BOOT R"(, "drives": {}})", "/drives", "expected a list"},
    {"drive without path", R"({)" BOOT R"(, "drives": [{"drive_id": "a"}]})", "/drives/0/path_on_host", "missing"},
    {"drive without id", R"({)" BOOT R"(, "drives": [{"path_on_host": "/a"}]})", "/drives/0/drive_id", "missing"},
    {"partuuid", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "partuuid": "x"}]})", "/drives/0/partuuid", "PARTUUID"},
    {"drive rate limiter", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "rate_limiter": {}}]})", "/drives/0/rate_limiter", "rate limiters"},
    {"vhost-user drive", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "socket": "/s"}]})", "/drives/0/socket", "vhost-user"},
    {"async io", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "io_engine": "Async"}]})", "/drives/0/io_engine", "\"Sync\""},
    {"cache type", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "cache_type": "None"}]})", "/drives/0/cache_type", "\"Unsafe\" or \"Writeback\""},
    {"read-only not bool", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "is_read_only": "yes"}]})", "/drives/0/is_read_only", "true or false"},
    {"two roots", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "is_root_device": true}, {"drive_id": "b", "path_on_host": "/b", "is_root_device": true}]})", "/drives/1/is_root_device", "second root"},
    {"unknown drive field", R"({)" BOOT R"(, "drives": [{"drive_id": "a", "path_on_host": "/a", "x": 1}]})", "/drives/0/x", "unknown field"},
    {"entropy limiter", R"({)" BOOT R"(, "entropy": {"rate_limiter": {"bandwidth": {}}}})", "/entropy/rate_limiter", "rate limiters"},
    {"interfaces not a list", R"({)" BOOT R"(, "network-interfaces": {"iface_id": "eth0"}})", "/network-interfaces", "expected a list"},
    {"two interfaces", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}, {"iface_id": "eth1", "host_dev_name": "tap1"}]})", "/network-interfaces/1", "one network interface"},
    {"interface without id", R"({)" BOOT R"(, "network-interfaces": [{"host_dev_name": "tap0"}]})", "/network-interfaces/0/iface_id", "missing"},
    {"interface without tap", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0"}]})", "/network-interfaces/0/host_dev_name", "missing"},
    {"tap name too long", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0123456789abc"}]})", "/network-interfaces/0/host_dev_name", "longer than"},
    {"tap name with a slash", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "a/b"}]})", "/network-interfaces/0/host_dev_name", "'/'"},
    {"tap name with a comma", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0,vhost=off"}]})", "/network-interfaces/0/host_dev_name", "','"},
    {"bad guest mac", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac"}]})", "/network-interfaces/0/guest_mac", "not a MAC address"},
    {"multicast guest mac", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "01:00:5e:00:00:01"}]})", "/network-interfaces/0/guest_mac", "multicast"},
    {"rx rate limiter", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "rx_rate_limiter": {}}]})", "/network-interfaces/0/rx_rate_limiter", "rate limiters"},
    {"tx rate limiter", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "tx_rate_limiter": {}}]})", "/network-interfaces/0/tx_rate_limiter", "rate limiters"},
    {"unknown interface field", R"({)" BOOT R"(, "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "allow_mmds_requests": true}]})", "/network-interfaces/0/allow_mmds_requests", "unknown field"},
    {"hybrid vsock", R"({)" BOOT R"(, "vsock": {"guest_cid": 3, "uds_path": "/v.sock"}})", "/vsock", "uds_path"},
    {"logger level off", R"({)" BOOT R"(, "logger": {"level": "Off"}})", "/logger/level", "cannot be turned off"},
    {"logger without levels", R"({)" BOOT R"(, "logger": {"show_level": false}})", "/logger/show_level", "always"},
    {"logger with origins", R"({)" BOOT R"(, "logger": {"show_log_origin": true}})", "/logger/show_log_origin", "source line"},
    {"logger module", R"({)" BOOT R"(, "logger": {"module": "api_server"}})", "/logger/module", "per-module"},
    {"logger unknown field", R"({)" BOOT R"(, "logger": {"x": 1}})", "/logger/x", "unknown field"},
    {"metrics without a path", R"({)" BOOT R"(, "metrics": {}})", "/metrics/metrics_path", "missing"},
    {"metrics unknown field", R"({)" BOOT R"(, "metrics": {"metrics_path": "/m", "x": 1}})", "/metrics/x", "unknown field"},
    {"balloon", R"({)" BOOT R"(, "balloon": {"amount_mib": 1}})", "/balloon", "not supported"},
    {"mmds", R"({)" BOOT R"(, "mmds-config": {}})", "/mmds-config", "not supported"},
    {"not json", R"({"boot-source": )", "/", "not JSON"},
    {"not an object", R"([1])", "/", "expected an object"},
};
// clang-format on
#undef BOOT

INSTANTIATE_TEST_SUITE_P(Table, FirecrackerConfigRefuses, ::testing::ValuesIn(kRefusals),
                         [](const ::testing::TestParamInfo<Refusal>& p) {
                             std::string name = p.param.what;
                             for (char& c : name)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

}  // namespace
}  // namespace stockade
