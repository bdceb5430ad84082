// Boot-to-init and runner memory overhead: the same kernel, initramfs and workload booted
// by stockade, by QEMU -M microvm and by QEMU -M q35 (both with KVM), interleaved run by
// run so that load on the host touches all three alike. Needs /dev/kvm: in the lab,
//   lab/run -- build/bench/boot/boot_bench --runs 10 [--kernel stockade|cloud]
// stockade's own kernel (the default) or Debian's cloud kernel, each with its initramfs.
// Boot-to-init is the time from process start to the first line the guest's init prints
// for the workload. Overhead is the VMM process's resident memory less the guest memory
// it has touched (the resident part of the guest RAM mapping), sampled at that moment.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lab/support/memory.hpp"
#include "lab/support/process.hpp"

namespace {

using stockade::lab::only_child_of;
using stockade::lab::process_memory;
using stockade::lab::ProcessMemory;
using stockade::lab::run_process;
using stockade::lab::RunOptions;

constexpr const char* kMark = "stockade-bench-ready";

struct Sample {
    double seconds = -1;
    ProcessMemory vmm;
    double supervisor_mib = 0;
};

struct Column {
    std::string name;
    std::vector<Sample> samples;
};

double median(std::vector<double> v) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string read_version(const std::string& file) {
    std::ifstream in(file);
    std::string v;
    std::getline(in, v);
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string build = STOCKADE_BUILD_DIR;
    int runs = 10;
    unsigned memory_mib = 256;
    std::string qemu = "/usr/bin/qemu-system-x86_64";
    std::string kernel = "stockade";
    CLI::App app{"boot_bench: boot-to-init and memory overhead, stockade beside QEMU"};
    app.add_option("--runs", runs, "boots per VMM (median reported)")->check(CLI::Range(1, 1000));
    app.add_option("--memory", memory_mib, "guest memory in MiB")->check(CLI::Range(64, 4096));
    app.add_option("--qemu", qemu, "QEMU binary");
    app.add_option("--kernel", kernel,
                   "stockade: stockade's own kernel (guest/kernel.config), the default; cloud: "
                   "Debian's cloud kernel, with its initramfs of modules")
        ->check(CLI::IsMember({"stockade", "cloud"}));
    CLI11_PARSE(app, argc, argv);

    if (::access("/dev/kvm", R_OK | W_OK) != 0) {
        std::fprintf(stderr,
                     "boot_bench: /dev/kvm is not usable here; run it in the lab:\n"
                     "  lab/run -- %s\n",
                     argv[0]);
        return 1;
    }
    const bool cloud = kernel == "cloud";
    const std::string cloud_dir = build + "/cache/kernels/cloud-amd64";
    const std::string bzimage = cloud ? cloud_dir + "/vmlinuz" : build + "/guest/bzImage";
    // The same kernel, uncompressed.
    const std::string vmlinux = build + (cloud ? "/guest/cloud/vmlinux" : "/guest/vmlinux");
    const std::string initramfs =
        build + (cloud ? "/guest/cloud/initramfs.cpio" : "/guest/initramfs.cpio");
    const std::string version_file =
        cloud ? cloud_dir + "/version" : build + "/guest/kernel.version";
    const std::string workload = std::string("echo ") + kMark + "; sleep 2";
    // The same initramfs with the same job archive appended, for QEMU.
    char dir_template[] = "/tmp/stockade-boot-bench.XXXXXX";
    const std::string dir = ::mkdtemp(dir_template);
    const std::string job = dir + "/job.cpio", combined = dir + "/initramfs+job.cpio";
    auto made = run_process(
        {build + "/guest/stockade-mkimage", "job", "-o", job, "--", "sh", "-c", workload});
    if (made.status != 0) {
        std::fprintf(stderr, "boot_bench: stockade-mkimage job failed: %s\n", made.err.c_str());
        return 1;
    }
    {
        std::ofstream out(combined, std::ios::binary);
        out << std::ifstream(initramfs, std::ios::binary).rdbuf()
            << std::ifstream(job, std::ios::binary).rdbuf();
    }
    // stockade's own default command line, word for word (no PCI devices here).
    const std::string cmdline = "console=ttyS0 quiet reboot=k panic=-1 8250.nr_uarts=1 pci=off";
    const std::string mem = std::to_string(memory_mib);
    // q35 is a PCI machine (its ACPI tables need config space): no pci=off there. And
    // there the init's `outl` to the agent port faults (#GP, the port is not granted in the
    // guest's TSS as on the other two machines; not investigated), so init is told that no
    // agent listens. That only spares q35 an exit per event.
    const std::string q35_cmdline =
        cmdline.substr(0, cmdline.rfind(" pci=off")) + " stockade.agent=off";
    auto qemu_argv = [&](const std::string& machine, const std::string& image) {
        return std::vector<std::string>{qemu,          "-M",
                                        machine,       "-enable-kvm",
                                        "-cpu",        "host",
                                        "-smp",        "1",
                                        "-m",          mem,
                                        "-nodefaults", "-no-user-config",
                                        "-nographic",  "-no-reboot",
                                        "-serial",     "stdio",
                                        "-kernel",     image,
                                        "-initrd",     combined,
                                        "-append",     machine == "q35" ? q35_cmdline : cmdline};
    };
    auto stockade_argv = [&](const std::string& image) {
        return std::vector<std::string>{build + "/runner/stockade",
                                        "run",
                                        "--kernel",
                                        image,
                                        "--initrd",
                                        initramfs,
                                        "--memory",
                                        mem,
                                        "--",
                                        "sh",
                                        "-c",
                                        workload};
    };
    const std::uint64_t guest_bytes = std::uint64_t{memory_mib} << 20;

    // Each VMM with the kernel formats it can boot: stockade and QEMU microvm (through the
    // kernel's PVH entry) enter the uncompressed vmlinux directly; every one boots the
    // bzImage, whose decompressor then runs in the guest.
    struct Vmm {
        std::string name;
        std::vector<std::string> argv;
        bool stockade;
    };
    const std::vector<Vmm> vmms{
        {"stockade, vmlinux (default)", stockade_argv(vmlinux), true},
        {"stockade, bzImage", stockade_argv(bzimage), true},
        {"QEMU -M microvm, vmlinux (PVH)", qemu_argv("microvm", vmlinux), false},
        {"QEMU -M microvm, bzImage", qemu_argv("microvm", bzimage), false},
        {"QEMU -M q35, bzImage", qemu_argv("q35", bzimage), false},
    };
    std::vector<Column> cols;
    for (const auto& v : vmms)
        cols.push_back({v.name, {}});
    for (int i = 0; i < runs; ++i) {
        for (std::size_t c = 0; c < cols.size(); ++c) {
            Sample s;
            RunOptions o;
            o.mark = kMark;
            o.timeout = std::chrono::seconds(180);
            const std::vector<std::string> cmd = vmms[c].argv;
            if (vmms[c].stockade) {
                o.on_mark = [&](pid_t pid) {
                    s.supervisor_mib = process_memory(pid, ~0ull).total_mib;
                    if (pid_t sandbox = only_child_of(pid); sandbox > 0)
                        s.vmm = process_memory(sandbox, guest_bytes);
                };
            } else {
                o.on_mark = [&](pid_t pid) { s.vmm = process_memory(pid, guest_bytes); };
                o.kill_at_mark = true;
            }
            auto r = run_process(cmd, o);
            if (r.mark_seconds < 0) {
                std::fprintf(stderr,
                             "boot_bench: %s run %d never printed the mark (status %d)\n%s\n",
                             cols[c].name.c_str(), i, r.status, r.describe().c_str());
                return 1;
            }
            if (vmms[c].stockade && r.status != 0) {
                std::fprintf(stderr, "boot_bench: stockade run %d ended with status %d\n%s\n", i,
                             r.status, r.describe().c_str());
                return 1;
            }
            s.seconds = r.mark_seconds;
            cols[c].samples.push_back(s);
        }
    }
    std::filesystem::remove_all(dir);

    auto median_of = [&](std::size_t c) {
        std::vector<double> v;
        for (auto& s : cols[c].samples)
            v.push_back(s.seconds);
        return median(v);
    };
    const double microvm_elf = median_of(2), microvm_bz = median_of(3);
    std::printf(
        "kernel %s (the same for all, as vmlinux or bzImage), %u MiB, 1 vCPU, workload `sh -c "
        "'%s'`, median of %d\n\n",
        read_version(version_file).c_str(), memory_mib, workload.c_str(), runs);
    std::printf(
        "| VMM, kernel | boot-to-init median (s) | min | max | vs microvm vmlinux | vs "
        "microvm bzImage | VMM RSS (MiB) | guest touched (MiB) | overhead (MiB) "
        "|\n|---|---|---|---|---|---|---|---|---|\n");
    for (auto& col : cols) {
        std::vector<double> t, rss, guest, over;
        for (auto& s : col.samples) {
            t.push_back(s.seconds);
            rss.push_back(s.vmm.total_mib);
            guest.push_back(s.vmm.guest_mib);
            over.push_back(s.vmm.found ? s.vmm.total_mib - s.vmm.guest_mib : -1);
        }
        std::printf("| %s | %.3f | %.3f | %.3f | %.2f | %.2f | %.1f | %.1f | %.2f |\n",
                    col.name.c_str(), median(t), *std::min_element(t.begin(), t.end()),
                    *std::max_element(t.begin(), t.end()), median(t) / microvm_elf,
                    median(t) / microvm_bz, median(rss), median(guest), median(over));
    }
    std::vector<double> sup;
    for (auto& s : cols[0].samples)
        sup.push_back(s.supervisor_mib);
    std::printf(
        "\nstockade's supervisor process (waits for the sandbox, holds the cgroup and "
        "jail for teardown): RSS %.1f MiB median\n",
        median(sup));
    return 0;
}
