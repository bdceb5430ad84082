// Sequential 1 MiB virtio-blk throughput, stockade beside QEMU in the same run: the same
// kernel, initramfs (stockade-init with the same job), memory, vCPU count and raw image;
// in each guest `dd bs=1M oflag=direct` then `iflag=direct` over --mib MiB of /dev/vda
// (timed by the guest's /proc/uptime, 10 ms resolution),
// --rounds times in one boot. Prints a Markdown table of medians (MB/s, 10^6 bytes/s).
//   lab/run -- build/bench/blk/blk_bench [--rounds 5] [--mib 128]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "guest/job.hpp"
#include "lab/support/process.hpp"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "blk_bench: %s\n", what.c_str());
    std::exit(1);
}

// Runs argv with stdin from /dev/null; returns stdout and stderr together.
std::string run(const std::vector<std::string>& argv) {
    stockade::lab::RunOptions o;
    o.close_stdin = false;              // /dev/null
    o.timeout = std::chrono::hours(1);  // many rounds of a large image take a while
    const auto r = stockade::lab::run_process(argv, o);
    return r.out + r.err;
}

struct Result {
    std::vector<double> write_mbs, read_mbs;
};

// "write 134217728 bytes 12.34 13.40": bytes, then the guest's uptime before and after
Result parse(const std::string& out, const std::string& who) {
    Result r;
    std::regex line(R"((write|read) (\d+) bytes ([0-9.]+) ([0-9.]+))");
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) {
        std::smatch m;
        if (!std::regex_search(l, m, line)) continue;
        const double seconds = std::stod(m[4]) - std::stod(m[3]);
        if (seconds <= 0) die(fmt::format("{}: a dd took no measurable time; use more --mib", who));
        const double mbs = std::stod(m[2]) / seconds / 1e6;
        (m[1] == "write" ? r.write_mbs : r.read_mbs).push_back(mbs);
    }
    if (r.write_mbs.empty() || r.read_mbs.empty())
        die(fmt::format("{}: no dd results in its output:\n{}", who, out));
    return r;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string all(const std::vector<double>& v) {
    std::string s;
    for (double x : v)
        s += fmt::format("{}{:.0f}", s.empty() ? "" : " ", x);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"virtio-blk sequential 1 MiB throughput: stockade and QEMU side by side"};
    int rounds = 5;
    unsigned mib = 128, memory = 512;
    std::string build = STOCKADE_BUILD_DIR;
    std::string qemu = "/usr/bin/qemu-system-x86_64";
    std::string qemu_cpu = "host";
    bool skip_qemu = false, skip_stockade = false;
    app.add_option("--rounds", rounds, "dd write+read rounds per guest")->check(CLI::Range(1, 50));
    app.add_option("--mib", mib, "MiB per dd")->check(CLI::Range(1, 4096));
    app.add_option("--memory", memory, "guest memory in MiB");
    app.add_option("--build-dir", build, "stockade build tree");
    app.add_option("--qemu", qemu, "QEMU binary");
    app.add_option("--qemu-cpu", qemu_cpu, "QEMU's -cpu model");
    app.add_flag("--no-qemu", skip_qemu, "measure stockade alone");
    app.add_flag("--no-stockade", skip_stockade, "measure QEMU alone");
    CLI11_PARSE(app, argc, argv);

    const std::string kernel = build + "/guest/bzImage";
    const std::string initramfs = build + "/guest/initramfs.cpio";
    const std::string stockade = build + "/runner/stockade";
    for (const auto& f : {kernel, initramfs, stockade})
        if (!fs::exists(f)) die(f + ": missing (build the stockade and guest-image targets)");

    char tmpl[] = "/tmp/stockade-blkbench.XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp");
    const fs::path dir = tmpl;
    const std::string image = (dir / "disk.img").string();
    {
        // Written, not sparse: neither VMM's first pass pays for allocating the file.
        std::ofstream f(image, std::ios::binary);
        const std::string mebibyte(1 << 20, '\x5a');
        for (unsigned i = 0; i < mib + 1; ++i)
            f << mebibyte;
        if (!f) die("writing " + image);
    }
    // Debian's busybox dd prints no timing: the guest's uptime (10 ms steps) brackets each dd.
    const std::string script = fmt::format(
        "now() {{ cut -d' ' -f1 /proc/uptime; }}; "
        "for i in $(seq {0}); do "
        "t0=$(now); dd if=/dev/zero of=/dev/vda bs=1M count={1} oflag=direct 2>/dev/null; "
        "t1=$(now); echo \"write {2} bytes $t0 $t1\"; "
        "t0=$(now); dd if=/dev/vda of=/dev/null bs=1M count={1} iflag=direct 2>/dev/null; "
        "t1=$(now); echo \"read {2} bytes $t0 $t1\"; done",
        rounds, mib, std::uint64_t{mib} << 20);
    const std::vector<std::string> workload = {"sh", "-c", script};

    std::vector<std::pair<std::string, Result>> rows;
    if (!skip_stockade) {
        std::vector<std::string> a = {stockade, "run", "--memory", std::to_string(memory),
                                      "--disk", image, "--"};
        a.insert(a.end(), workload.begin(), workload.end());
        rows.emplace_back("stockade (virtio-blk, event loop + ioeventfd)",
                          parse(run(a), "stockade"));
    }
    if (!skip_qemu) {
        // The same initramfs with the same job appended, as stockade boots it.
        stockade::Job job;
        job.argv = workload;
        const auto archive = stockade::build_job_archive(job);
        const std::string initrd = (dir / "initrd.cpio").string();
        {
            std::ifstream in(initramfs, std::ios::binary);
            std::ofstream out(initrd, std::ios::binary);
            out << in.rdbuf();
            out.write(reinterpret_cast<const char*>(archive.data()),
                      static_cast<std::streamsize>(archive.size()));
            if (!out) die("writing " + initrd);
        }
        const std::vector<std::string> a = {
            qemu,
            "-nodefaults",
            "-no-user-config",
            "-machine",
            "q35,accel=kvm",
            "-cpu",
            qemu_cpu,
            "-m",
            std::to_string(memory),
            "-smp",
            "1",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
            kernel,
            "-initrd",
            initrd,
            "-append",
            "console=ttyS0 quiet reboot=k panic=-1 8250.nr_uarts=1 stockade.agent=off",
            "-drive",
            "file=" + image + ",format=raw,if=none,id=d0,cache=writeback,aio=threads",
            "-device",
            "virtio-blk-pci,drive=d0"};
        rows.emplace_back("QEMU q35 virtio-blk-pci (cache=writeback, aio=threads)",
                          parse(run(a), "qemu"));
    }
    fs::remove_all(dir);

    std::printf(
        "virtio-blk sequential throughput, dd bs=1M %u MiB O_DIRECT in the guest, "
        "%d rounds, 1 vCPU, %u MiB (MB/s; median, then every round)\n\n",
        mib, rounds, memory);
    std::printf("| VMM | write median | read median | write rounds | read rounds |\n");
    std::printf("|---|---:|---:|---|---|\n");
    for (const auto& [name, r] : rows)
        std::printf("| %s | %.0f | %.0f | %s | %s |\n", name.c_str(), median(r.write_mbs),
                    median(r.read_mbs), all(r.write_mbs).c_str(), all(r.read_mbs).c_str());
    if (!skip_stockade && !skip_qemu) {
        const Result &s = rows[0].second, &q = rows[1].second;
        std::printf("\nstockade / QEMU: write %.2f, read %.2f\n",
                    median(s.write_mbs) / median(q.write_mbs),
                    median(s.read_mbs) / median(q.read_mbs));
    }
    return 0;
}
