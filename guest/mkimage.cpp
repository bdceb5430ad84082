// stockade-mkimage: builds guest images reproducibly (same inputs, same bytes).
//
//   stockade-mkimage initramfs -o OUT --init BIN [--busybox BIN] [--modules-dir DIR
//                    --module NAME... --autoload NAME...] [--kernel-release RELEASE]
//                    [--file SRC:DST[:MODE]...] [--gzip]
//   stockade-mkimage rootfs -o OUT --from DIR [--size-mib N] [--label L]
//
// The initramfs is a newc cpio written by stockade::cpio::Writer; modules are resolved
// with their dependencies from modules.dep and listed for stockade-init (guest/abi.hpp).
// The rootfs is ext4 made by mke2fs -d with a fixed UUID, hash seed and time.

#include <fcntl.h>
#include <lz4.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "base/io.hpp"
#include "guest/abi.hpp"
#include "guest/cpio.hpp"
#include "guest/initramfs_modules.hpp"
#include "guest/job.hpp"

namespace fs = std::filesystem;
using stockade::Result;

namespace {

// Directories every image has, so stockade-init's mounts have their mount points.
constexpr const char* kBaseDirs[] = {"/bin",  "/dev",  "/etc",     "/etc/stockade", "/lib",
                                     "/proc", "/root", "/run",     "/sbin",         "/sys",
                                     "/tmp",  "/usr",  "/usr/bin", "/usr/sbin",     "/stockade"};

std::string module_name(const std::string& path) {
    std::string base = fs::path(path).filename().string();
    base = base.substr(0, base.find(".ko"));
    std::replace(base.begin(), base.end(), '-', '_');
    return base;
}

struct ModuleIndex {
    fs::path dir;                                          // .../lib/modules/<version>
    std::map<std::string, std::string> path_of;            // name -> relative path
    std::map<std::string, std::vector<std::string>> deps;  // relative path -> dep paths
    std::set<std::string> builtin;                         // names built into the kernel
};

Result<ModuleIndex> read_module_index(const fs::path& dir) {
    ModuleIndex idx{dir, {}, {}, {}};
    auto text = STOCKADE_TRY(stockade::read_text_file((dir / "modules.dep").string(), 64u << 20));
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        std::string line = text.substr(pos, eol - pos);
        pos = eol + 1;
        std::size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string mod = line.substr(0, colon);
        std::vector<std::string> deps;
        std::size_t p = colon + 1;
        while (p < line.size()) {
            while (p < line.size() && line[p] == ' ')
                ++p;
            std::size_t q = line.find(' ', p);
            if (q == std::string::npos) q = line.size();
            if (q > p) deps.push_back(line.substr(p, q - p));
            p = q;
        }
        idx.path_of[module_name(mod)] = mod;
        idx.deps[mod] = std::move(deps);
    }
    if (auto b = stockade::read_text_file((dir / "modules.builtin").string(), 16u << 20)) {
        std::size_t p = 0;
        while (p < b->size()) {
            std::size_t e = b->find('\n', p);
            if (e == std::string::npos) e = b->size();
            if (e > p) idx.builtin.insert(module_name(b->substr(p, e - p)));
            p = e + 1;
        }
    }
    return idx;
}

// Appends `mod` after everything it depends on (depth-first; each module once).
void order_module(const ModuleIndex& idx, const std::string& mod, std::vector<std::string>& order,
                  std::set<std::string>& seen) {
    if (!seen.insert(mod).second) return;
    if (auto it = idx.deps.find(mod); it != idx.deps.end())
        for (const auto& d : it->second)
            order_module(idx, d, order, seen);
    order.push_back(mod);
}

Result<std::vector<std::string>> run_lines(const std::string& cmd) {
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return stockade::fail_sys(fmt::format("running {}", cmd));
    std::vector<std::string> lines;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p) != nullptr) {
        std::string l(buf);
        while (!l.empty() && (l.back() == '\n' || l.back() == '\r'))
            l.pop_back();
        if (!l.empty()) lines.push_back(l);
    }
    int st = ::pclose(p);
    if (st != 0) return stockade::fail("{} exited with status {}", cmd, st);
    return lines;
}

Result<std::vector<std::uint8_t>> gzip(std::span<const std::uint8_t> in) {
    z_stream z{};
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return stockade::fail("deflateInit2 failed");
    std::vector<std::uint8_t> out(deflateBound(&z, in.size()) + 64);
    z.next_in = const_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) return stockade::fail("gzip: deflate failed ({})", rc);
    return out;
}

// Writes `bytes` to `path` through a temporary file and a rename: a reader never sees a
// half-written image, and a failed build leaves the old one.
Result<> write_whole(const std::string& path, std::span<const std::uint8_t> bytes) {
    const std::string tmp = path + ".tmp";
    STOCKADE_TRY_VOID(stockade::write_file(
        tmp, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
        O_CREAT | O_TRUNC));
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        return stockade::fail_sys(fmt::format("rename {} to {}", tmp, path));
    return {};
}

struct InitramfsOptions {
    std::string output;
    std::string init;
    std::string busybox;
    std::string modules_dir;
    std::vector<std::string> modules;
    std::vector<std::string> autoload;
    std::vector<std::string> files;
    bool gzip = false;
    std::string kernel_release;
};

Result<> add_host_file(stockade::cpio::Writer& w, const std::string& src, const std::string& dst,
                       std::uint32_t mode) {
    auto data = STOCKADE_TRY(stockade::read_file(src, 256u << 20));
    w.add_file(dst, data, mode);
    return {};
}

Result<> build_initramfs(const InitramfsOptions& o) {
    stockade::cpio::Writer w;
    std::set<std::string> dirs(std::begin(kBaseDirs), std::end(kBaseDirs));
    std::vector<std::pair<std::string, std::string>> links;
    std::map<std::string, std::pair<std::string, std::uint32_t>> files;  // dst -> (src, mode)

    files["/init"] = {o.init, 0755};
    if (!o.busybox.empty()) {
        files["/bin/busybox"] = {o.busybox, 0755};
        for (const auto& applet : STOCKADE_TRY(run_lines(o.busybox + " --list-full")))
            if ("/" + applet != "/bin/busybox") links.emplace_back("/" + applet, "/bin/busybox");
    }
    for (const auto& spec : o.files) {
        auto a = spec.find(':');
        if (a == std::string::npos)
            return stockade::fail("--file {}: expected SRC:DST[:MODE]", spec);
        auto b = spec.find(':', a + 1);
        std::string src = spec.substr(0, a);
        std::string dst =
            spec.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
        std::uint32_t mode =
            b == std::string::npos ? 0644 : std::stoul(spec.substr(b + 1), nullptr, 8);
        files[dst] = {src, mode};
    }

    std::map<std::string, std::string> module_lists;  // name -> newline-separated paths
    std::string all_order;
    if (!o.modules.empty() || !o.autoload.empty()) {
        if (o.modules_dir.empty()) return stockade::fail("--module needs --modules-dir");
        // The directory may be the fetch-kernel "modules" link: its target names the version.
        fs::path modules_dir = fs::canonical(o.modules_dir);
        auto idx = STOCKADE_TRY(read_module_index(modules_dir));
        std::string version = modules_dir.filename().string();
        std::vector<std::string> wanted = o.modules;
        wanted.insert(wanted.end(), o.autoload.begin(), o.autoload.end());
        std::sort(wanted.begin(), wanted.end());
        wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
        std::vector<std::string> all;
        std::set<std::string> all_seen;
        for (const auto& name : wanted) {
            auto it = idx.path_of.find(module_name(name));
            if (it == idx.path_of.end() && idx.builtin.contains(module_name(name))) continue;
            if (it == idx.path_of.end())
                return stockade::fail("module {} is not in {}/modules.dep", name, o.modules_dir);
            std::vector<std::string> order;
            std::set<std::string> seen;
            order_module(idx, it->second, order, seen);
            std::string list;
            for (const auto& rel : order) {
                list += "/lib/modules/" + version + "/" + rel + "\n";
                files["/lib/modules/" + version + "/" + rel] = {(idx.dir / rel).string(), 0644};
            }
            module_lists[module_name(name)] = list;
            order_module(idx, it->second, all, all_seen);
        }
        for (const auto& rel : all)
            all_order += "/lib/modules/" + version + "/" + rel + "\n";
    }

    for (const auto& [dst, _] : files)
        for (fs::path p = fs::path(dst).parent_path(); p != "/" && !p.empty(); p = p.parent_path())
            dirs.insert(p.string());
    for (const auto& [dst, _] : links)
        for (fs::path p = fs::path(dst).parent_path(); p != "/" && !p.empty(); p = p.parent_path())
            dirs.insert(p.string());
    dirs.insert(std::string(stockade::guest_abi::kModuleListDir));

    // Sorted containers give a stable order: parents sort before their children.
    for (const auto& d : dirs)
        w.add_directory(d, d == "/tmp" ? 01777 : 0755);
    w.add_char_device("/dev/console", 5, 1, 0600);
    for (const auto& [dst, src_mode] : files)
        STOCKADE_TRY_VOID(add_host_file(w, src_mode.first, dst, src_mode.second));
    std::sort(links.begin(), links.end());
    for (const auto& [dst, target] : links)
        if (!files.contains(dst)) w.add_symlink(dst, target);
    for (const auto& [name, list] : module_lists)
        w.add_file(std::string(stockade::guest_abi::kModuleListDir) + "/" + name, list);
    std::string autoload;
    for (const auto& name : o.autoload)
        autoload += module_name(name) + "\n";
    w.add_file(std::string(stockade::guest_abi::kAutoloadList), autoload);
    w.add_file("/etc/stockade/modules.order", all_order);
    if (!o.kernel_release.empty())
        w.add_file(std::string(stockade::guest_abi::kKernelReleaseFile), o.kernel_release + "\n");

    auto archive = w.finish();
    if (o.gzip) archive = STOCKADE_TRY(gzip(archive));
    return write_whole(o.output, archive);
}

struct RootfsOptions {
    std::string output;
    std::string from;
    std::string label = "stockade-root";
    unsigned size_mib = 0;
};

Result<> build_rootfs(const RootfsOptions& o) {
    // A fixed UUID and hash seed, and E2FSPROGS_FAKE_TIME for the superblock times,
    // make the image a function of the directory's content alone.
    std::uint64_t bytes = 0;
    std::error_code ec;
    if (o.size_mib == 0)
        for (auto it = fs::recursive_directory_iterator(o.from, ec); !ec && it != fs::end(it);
             it.increment(ec))
            if (it->symlink_status(ec).type() == fs::file_type::regular) bytes += it->file_size(ec);
    if (ec) return stockade::fail("reading {}: {}", o.from, ec.message());
    unsigned size =
        o.size_mib != 0
            ? o.size_mib
            : static_cast<unsigned>(std::max<std::uint64_t>(16, bytes * 3 / 2 / (1 << 20) + 16));
    // A name of this process's own: two builds of one image at once never share a file.
    std::string tmp = o.output + ".tmp" + std::to_string(::getpid());
    ::unlink(tmp.c_str());
    std::vector<std::string> args = {
        "mke2fs",
        "-q",
        "-F",
        "-t",
        "ext4",
        "-b",
        "4096",
        "-L",
        o.label,
        "-U",
        "5f7e0c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
        "-E",
        "hash_seed=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0,root_owner=0:0,no_copy_xattrs",
        "-d",
        o.from,
        tmp,
        std::to_string(size) + "M"};
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return stockade::fail_sys("fork");
    if (pid == 0) {
        ::setenv("E2FSPROGS_FAKE_TIME", "1", 1);
        ::execvp("mke2fs", argv.data());
        ::_exit(127);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return stockade::fail("mke2fs -d {} {} failed (status {})", o.from, o.output, st);
    if (::rename(tmp.c_str(), o.output.c_str()) != 0)
        return stockade::fail_sys(fmt::format("rename {} to {}", tmp, o.output));
    return {};
}

struct VmlinuxOptions {
    std::string output;
    std::string from;
};

std::uint32_t le32(std::span<const std::uint8_t> b, std::size_t at) {
    return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (std::uint32_t{b[at + 3]} << 24);
}

// LZ4's legacy frame (what the kernel's LZ4 compression writes): magic, then blocks of a
// 32-bit compressed size and at most 8 MiB each once decompressed, to the end of input.
Result<std::vector<std::uint8_t>> unlz4_legacy(std::span<const std::uint8_t> in) {
    constexpr std::size_t kBlock = 8 << 20;
    std::vector<std::uint8_t> out;
    std::size_t at = 4;
    while (at + 4 <= in.size()) {
        const std::uint32_t n = le32(in, at);
        if (n == 0x184c2102) {  // a concatenated frame starts again
            at += 4;
            continue;
        }
        at += 4;
        if (n > in.size() - at) break;  // the kernel's payload may carry trailing bytes
        const std::size_t old = out.size();
        out.resize(old + kBlock);
        const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + at),
                                            reinterpret_cast<char*>(out.data() + old),
                                            static_cast<int>(n), static_cast<int>(kBlock));
        if (got < 0) return stockade::fail("LZ4 block at offset {} is corrupt", at);
        out.resize(old + static_cast<std::size_t>(got));
        at += n;
    }
    // The kernel's build appends the decompressed size.
    if (in.size() < 8 || le32(in, in.size() - 4) != out.size())
        return stockade::fail("LZ4 payload decompressed to {} bytes, its trailer says otherwise",
                              out.size());
    return out;
}

Result<std::vector<std::uint8_t>> gunzip(std::span<const std::uint8_t> in) {
    std::vector<std::uint8_t> out;
    z_stream z{};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return stockade::fail("zlib init failed");
    z.next_in = const_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    while (rc == Z_OK) {
        out.resize(out.size() + (16 << 20));
        z.next_out = out.data() + z.total_out;
        z.avail_out = static_cast<uInt>(out.size() - z.total_out);
        rc = inflate(&z, Z_NO_FLUSH);
    }
    out.resize(z.total_out);
    inflateEnd(&z);
    if (rc != Z_STREAM_END) return stockade::fail("gzip payload is corrupt (zlib {})", rc);
    return out;
}

// The kernel inside a bzImage: the setup header's payload_offset/payload_length locate the
// compressed vmlinux after the setup sectors; it is decompressed and checked to be ELF.
Result<> build_vmlinux(const VmlinuxOptions& o) {
    auto file = STOCKADE_TRY(stockade::read_file(o.from, 256u << 20));
    const std::span<const std::uint8_t> f(file);
    if (f.size() < 0x250 || le32(f, 0x202) != 0x53726448)
        return stockade::fail("{}: not a bzImage (no \"HdrS\" setup header)", o.from);
    if ((f[0x206] | (f[0x207] << 8)) < 0x0208)
        return stockade::fail("{}: boot protocol too old to say where its payload is", o.from);
    const std::size_t setup = (f[0x1f1] == 0 ? 4 : f[0x1f1]) + 1;
    const std::size_t start = setup * 512 + le32(f, 0x248), length = le32(f, 0x24c);
    if (start > f.size() || length > f.size() - start || length < 4)
        return stockade::fail("{}: payload {}+{} is outside the file", o.from, start, length);
    const auto payload = f.subspan(start, length);
    std::vector<std::uint8_t> elf;
    if (le32(payload, 0) == 0x184c2102)
        elf = STOCKADE_TRY(unlz4_legacy(payload));
    else if (payload[0] == 0x1f && payload[1] == 0x8b)
        elf = STOCKADE_TRY(gunzip(payload));
    else
        return stockade::fail(
            "{}: payload compression (magic {:02x}{:02x}{:02x}{:02x}) is not "
            "supported; LZ4 and gzip are",
            o.from, payload[0], payload[1], payload[2], payload[3]);
    if (elf.size() < 64 || std::memcmp(elf.data(),
                                       "\x7f"
                                       "ELF",
                                       4) != 0)
        return stockade::fail("{}: the decompressed payload is not an ELF vmlinux", o.from);
    return write_whole(o.output, elf);
}

struct JobOptions {
    std::string output;
    stockade::Job job;
};

// The job archive `stockade run` appends to the initramfs, as a file: another VMM can boot
// the same initramfs with it concatenated (the benchmarks do, to run QEMU on equal terms).
Result<> build_job(const JobOptions& o) {
    return write_whole(o.output, stockade::build_job_archive(o.job));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"stockade-mkimage: build reproducible guest images for stockade"};
    app.require_subcommand(1);

    InitramfsOptions io;
    auto* ini = app.add_subcommand("initramfs", "newc cpio initramfs with stockade-init as /init");
    ini->add_option("-o,--output", io.output, "archive to write")->required();
    ini->add_option("--init", io.init, "program to install as /init")
        ->required()
        ->check(CLI::ExistingFile);
    ini->add_option("--busybox", io.busybox, "static busybox to install with its applet links")
        ->check(CLI::ExistingFile);
    ini->add_option("--modules-dir", io.modules_dir,
                    "the kernel's /lib/modules/<version> (with modules.dep)")
        ->check(CLI::ExistingDirectory);
    ini->add_option("--module", io.modules, "module to include with its dependencies");
    ini->add_option("--autoload", io.autoload, "module stockade-init loads at boot");
    ini->add_option("--kernel-release", io.kernel_release,
                    "the release (uname -r) of the kernel this initramfs is for, when that kernel "
                    "has its drivers built in (stockade's own): `stockade run` refuses the "
                    "initramfs with any other kernel")
        ->check([](const std::string& r) {
            return stockade::is_kernel_release(r) ? std::string() : "not a kernel release: " + r;
        });
    ini->add_option("--file", io.files, "extra file SRC:DST[:OCTAL_MODE]");
    ini->add_flag("--gzip", io.gzip, "gzip the archive (default: uncompressed, fastest to boot)");

    RootfsOptions ro;
    auto* rfs = app.add_subcommand("rootfs", "ext4 root file system image from a directory");
    rfs->add_option("-o,--output", ro.output, "image to write")->required();
    rfs->add_option("--from", ro.from, "directory whose content becomes the file system")
        ->required()
        ->check(CLI::ExistingDirectory);
    rfs->add_option("--size-mib", ro.size_mib, "image size (default: content * 1.5 + 16 MiB)");
    rfs->add_option("--label", ro.label, "file system label");

    JobOptions jo;
    auto* job =
        app.add_subcommand("job", "the job archive for a workload, as `stockade run` makes it");
    job->add_option("-o,--output", jo.output, "archive to write")->required();
    job->add_option("-e,--env", jo.job.env, "NAME=value for the workload's environment");
    job->add_option("-w,--workdir", jo.job.workdir, "the workload's working directory");
    job->add_option("--hostname", jo.job.hostname, "the guest's host name");
    job->add_option("argv", jo.job.argv, "the workload and its arguments (after --)")->required();

    VmlinuxOptions vo;
    auto* vml = app.add_subcommand(
        "vmlinux", "the uncompressed kernel (ELF) inside a bzImage, for direct boot");
    vml->add_option("-o,--output", vo.output, "file to write")->required();
    vml->add_option("--from", vo.from, "bzImage (LZ4 or gzip payload)")
        ->required()
        ->check(CLI::ExistingFile);

    CLI11_PARSE(app, argc, argv);
    Result<> r = ini->parsed()   ? build_initramfs(io)
                 : rfs->parsed() ? build_rootfs(ro)
                 : vml->parsed() ? build_vmlinux(vo)
                                 : build_job(jo);
    if (!r) {
        std::fprintf(stderr, "stockade-mkimage: %s\n", r.error().message.c_str());
        return 1;
    }
    return 0;
}
