#include "runner/oci/rootfs_image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "base/io.hpp"
#include "runner/vmm/snapshot_io.hpp"

namespace stockade::oci {
namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Runs `argv` and waits: its exit status, or why it could not run.
Result<int> run_program(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) return fail_sys("fork");
    if (pid == 0) {
        // Its output is not the container's: our stdout and stderr are the engine's pipes.
        if (const int null = ::open("/dev/null", O_RDWR); null >= 0) {
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDIN_FILENO);
        }
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return fail_sys("waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Result<> make_dir(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail("creating {}: {}", dir, ec.message());
    ::chmod(dir.c_str(), 0700);
    return {};
}

}  // namespace

std::string oci_data_dir() {
    const char* env = std::getenv("STOCKADE_OCI_DIR");
    return env && *env ? env : "/var/lib/stockade/oci";
}

std::string container_image_path(std::string_view id) {
    return fmt::format("{}/containers/{}.ext4", oci_data_dir(), id);
}

std::string mkimage_path() {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const fs::path beside = self.parent_path() / "stockade-mkimage";
        if (::access(beside.c_str(), X_OK) == 0) return beside.string();
    }
    return STOCKADE_MKIMAGE;
}

Result<TreeContent> tree_digest(const std::string& dir) {
    std::error_code ec;
    struct stat top {};
    if (::stat(dir.c_str(), &top) != 0) return fail_sys(fmt::format("stat {}", dir));
    std::string text = fmt::format("root {:o} {} {}\n", top.st_mode, top.st_uid, top.st_gid);
    std::uint64_t bytes = 0;
    std::vector<std::string> paths;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
         it.increment(ec))
        paths.push_back(fs::relative(it->path(), dir).string());
    if (ec) return fail("reading {}: {}", dir, ec.message());
    std::sort(paths.begin(), paths.end());
    for (const std::string& rel : paths) {
        const std::string path = dir + "/" + rel;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) return fail_sys(fmt::format("stat {}", path));
        // Every field length-prefixed or fixed: no two trees give the same text.
        text += fmt::format("{}:{} {:o} {} {} {} {} {}:{} ", rel.size(), rel, st.st_mode, st.st_uid,
                            st.st_gid, S_ISREG(st.st_mode) ? st.st_size : 0, st.st_nlink,
                            major(st.st_rdev), minor(st.st_rdev));
        if (S_ISSOCK(st.st_mode)) return fail("{}: a socket cannot go into an image", path);
        if (S_ISLNK(st.st_mode)) {
            std::error_code lec;
            const std::string target = fs::read_symlink(path, lec).string();
            text += fmt::format("{}:{}\n", target.size(), target);
            if (lec) return fail("reading the link {}: {}", path, lec.message());
        } else if (S_ISREG(st.st_mode)) {
            bytes += static_cast<std::uint64_t>(st.st_size);
            auto fd = STOCKADE_TRY(open_file(path, O_RDONLY | O_NOFOLLOW));
            text += to_hex(STOCKADE_TRY(sha256_fd(fd.get(), path))) + "\n";
        }
    }
    return TreeContent{sha256(text), bytes};
}

Result<ImageResult> container_image(const std::string& root_dir, std::string_view id,
                                    std::optional<std::uint64_t> size_mib,
                                    const std::string& mkimage) {
    ImageResult out;
    const auto started = std::chrono::steady_clock::now();
    const TreeContent content = STOCKADE_TRY(tree_digest(root_dir));
    const std::uint64_t size = size_mib.value_or(content.bytes * 3 / 2 / (1 << 20) + 256);
    const std::string images = oci_data_dir() + "/images";
    STOCKADE_TRY_VOID(make_dir(images));
    STOCKADE_TRY_VOID(make_dir(oci_data_dir() + "/containers"));
    const std::string cached = fmt::format("{}/{}-{}.ext4", images, to_hex(content.digest), size);
    out.cached = ::access(cached.c_str(), R_OK) == 0;
    if (!out.cached) {
        // mkimage writes a file of its own beside CACHED and renames it: a half-built image is
        // never found, and two containers building the same one at once each rename a whole
        // one.
        const int rc = STOCKADE_TRY(run_program({mkimage, "rootfs", "-o", cached, "--from",
                                                 root_dir, "--size-mib", std::to_string(size)}));
        if (rc != 0)
            return fail("making the root file system image from {} failed ({} exited {})", root_dir,
                        mkimage, rc);
    }
    out.build_seconds = seconds_since(started);
    const auto copying = std::chrono::steady_clock::now();
    out.path = container_image_path(id);
    auto from = STOCKADE_TRY(open_file(cached, O_RDONLY));
    auto to = STOCKADE_TRY(open_file(out.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    if (auto copied = restore_disk(from.get(), to.get()); !copied) {
        ::unlink(out.path.c_str());
        return std::unexpected(std::move(copied).error().context(out.path));
    }
    out.copy_seconds = seconds_since(copying);
    return out;
}

}  // namespace stockade::oci
