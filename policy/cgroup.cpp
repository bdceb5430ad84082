#include "policy/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include <cerrno>
#include <thread>
#include <vector>

#include "base/io.hpp"
#include "base/log.hpp"

namespace stockade::policy {
namespace {

Result<std::string> read_at(int dir_fd, std::string_view dir, std::string_view file) {
    int fd = ::openat(dir_fd, std::string(file).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_sys(fmt::format("open {}/{}", dir, file));
    UniqueFd guard(fd);
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_sys(fmt::format("read {}/{}", dir, file));
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    while (!out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

// One write(2) of the whole value: cgroup files take a value per write.
Result<> write_at(int dir_fd, std::string_view file, std::string_view value) {
    int fd = ::openat(dir_fd, std::string(file).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail_sys("open");
    UniqueFd guard(fd);
    ssize_t n = ::write(fd, value.data(), value.size());
    if (n < 0) return fail_sys("write");
    if (static_cast<std::size_t>(n) != value.size()) return fail("short write");
    return {};
}

bool has_word(std::string_view list, std::string_view word) {
    std::size_t pos = 0;
    while (pos < list.size()) {
        std::size_t end = list.find(' ', pos);
        if (end == std::string_view::npos) end = list.size();
        if (list.substr(pos, end - pos) == word) return true;
        pos = end + 1;
    }
    return false;
}

bool is_cgroup2(const std::string& path) {
    struct statfs st {};
    return ::statfs(path.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

std::vector<std::string> path_prefixes(const std::string& path) {
    std::vector<std::string> out;
    for (std::size_t pos = 1; pos <= path.size(); ++pos)
        if (pos == path.size() || path[pos] == '/') out.push_back(path.substr(0, pos));
    return out;
}

// Creates the parent if needed and enables `controllers` in every cgroup from the cgroup2
// mount down to (and including) the parent, so the leaf gets their interface files.
Result<> prepare_parent(const std::string& parent, const std::vector<std::string>& controllers) {
    std::vector<std::string> chain;  // cgroup directories from the mount root down to parent
    for (const auto& prefix : path_prefixes(parent)) {
        if (!chain.empty()) {
            if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
                return fail_sys(fmt::format("creating cgroup {}", prefix));
            chain.push_back(prefix);
        } else if (is_cgroup2(prefix)) {
            chain.push_back(prefix);
        }
    }
    if (chain.empty())
        return fail("cgroup parent {}: not on a cgroup2 file system (is cgroup v2 mounted?)",
                    parent);
    for (const auto& dir : chain) {
        auto fd = STOCKADE_TRY(open_file(dir, O_RDONLY | O_DIRECTORY));
        auto available = STOCKADE_TRY(read_at(fd.get(), dir, "cgroup.controllers"));
        auto enabled = STOCKADE_TRY(read_at(fd.get(), dir, "cgroup.subtree_control"));
        for (const auto& c : controllers) {
            if (!has_word(available, c))
                return fail(
                    "cgroup {}: the {} controller is not available (cgroup.controllers: {})", dir,
                    c, available.empty() ? "none" : available);
            if (has_word(enabled, c)) continue;
            if (auto r = write_at(fd.get(), "cgroup.subtree_control", "+" + c); !r) {
                auto msg =
                    fmt::format("enabling the {} controller in {}/cgroup.subtree_control", c, dir);
                if (r.error().code == EBUSY)
                    msg +=
                        " (a cgroup with processes of its own cannot delegate controllers; "
                        "choose a parent without processes)";
                return fail_sys(msg, r.error().code != 0 ? r.error().code : EIO);
            }
        }
    }
    return {};
}

std::string limit_text(std::uint64_t v) {
    return v == kUnlimited ? std::string("max") : fmt::format("{}", v);
}

}  // namespace

CgroupLeaf& CgroupLeaf::operator=(CgroupLeaf&& o) noexcept {
    if (this != &o) {
        if (auto r = remove(); !r) log::warn("{}", r.error().message);
        path_ = std::exchange(o.path_, std::string());
        dir_ = std::move(o.dir_);
    }
    return *this;
}

CgroupLeaf::~CgroupLeaf() {
    if (auto r = remove(); !r) log::warn("{}", r.error().message);
}

Result<CgroupLeaf> CgroupLeaf::create(const CgroupPolicy& limits, std::string_view sandbox_id) {
    STOCKADE_TRY_VOID(check_sandbox_id(sandbox_id));
    std::vector<std::string> controllers;
    if (limits.memory_max || limits.memory_swap_max) controllers.emplace_back("memory");
    if (limits.pids_max) controllers.emplace_back("pids");
    if (limits.cpu_max) controllers.emplace_back("cpu");
    if (!limits.io_max.empty()) controllers.emplace_back("io");
    STOCKADE_TRY_VOID(prepare_parent(limits.parent, controllers));

    std::string path = fmt::format("{}/{}", limits.parent, sandbox_id);
    if (::mkdir(path.c_str(), 0755) != 0) {
        if (errno == EEXIST)
            return fail("creating cgroup {}: it already exists (another sandbox with this id?)",
                        path);
        return fail_sys(fmt::format("creating cgroup {}", path));
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        ::rmdir(path.c_str());
        return fail_sys(fmt::format("open cgroup {}", path), err);
    }
    CgroupLeaf leaf(path, UniqueFd(fd));  // from here on, failures remove the leaf

    auto set = [&](std::string_view file, const std::string& value) -> Result<> {
        if (auto r = write_at(leaf.dir_fd(), file, value); !r)
            return fail_sys(fmt::format("setting cgroup {} of {} to {}", file, path, value),
                            r.error().code != 0 ? r.error().code : EIO);
        return {};
    };
    if (limits.memory_max) STOCKADE_TRY_VOID(set("memory.max", limit_text(*limits.memory_max)));
    if (limits.memory_swap_max)
        STOCKADE_TRY_VOID(set("memory.swap.max", limit_text(*limits.memory_swap_max)));
    if (limits.pids_max) STOCKADE_TRY_VOID(set("pids.max", limit_text(*limits.pids_max)));
    if (limits.cpu_max)
        STOCKADE_TRY_VOID(set("cpu.max", fmt::format("{} {}", limit_text(limits.cpu_max->quota_us),
                                                     limits.cpu_max->period_us)));
    for (const auto& io : limits.io_max) {
        std::string line = fmt::format("{}:{}", io.major, io.minor);
        if (io.rbps) line += " rbps=" + limit_text(*io.rbps);
        if (io.wbps) line += " wbps=" + limit_text(*io.wbps);
        if (io.riops) line += " riops=" + limit_text(*io.riops);
        if (io.wiops) line += " wiops=" + limit_text(*io.wiops);
        STOCKADE_TRY_VOID(set("io.max", line));
    }
    return leaf;
}

Result<> CgroupLeaf::add_process(pid_t pid) const {
    if (auto r = write_at(dir_.get(), "cgroup.procs", fmt::format("{}", pid)); !r)
        return fail_sys(fmt::format("moving process {} into cgroup {}", pid, path_),
                        r.error().code != 0 ? r.error().code : EIO);
    return {};
}

Result<std::string> CgroupLeaf::read(std::string_view file) const {
    return read_at(dir_.get(), path_, file);
}

Result<std::optional<CgroupLeaf>> CgroupLeaf::adopt(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        return fail_sys(fmt::format("open cgroup {}", path));
    }
    return CgroupLeaf(path, UniqueFd(fd));
}

Result<> CgroupLeaf::remove(std::chrono::milliseconds timeout) {
    if (path_.empty()) return {};
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    bool killed = false;
    auto pause = std::chrono::microseconds(200);
    for (;;) {
        auto events = STOCKADE_TRY(read_at(dir_.get(), path_, "cgroup.events"));
        if (events.find("populated 1") != std::string::npos) {
            if (!killed) {
                // cgroup.kill (Linux 5.14) kills every task inside atomically, no pid races.
                if (auto r = write_at(dir_.get(), "cgroup.kill", "1"); !r)
                    return fail_sys(fmt::format("killing the processes left in cgroup {}", path_),
                                    r.error().code != 0 ? r.error().code : EIO);
                killed = true;
            }
        } else if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) {
            path_.clear();
            dir_.reset();
            return {};
        } else if (errno != EBUSY) {
            return fail_sys(fmt::format("removing cgroup {}", path_));
        }
        if (clock::now() >= deadline)
            return fail("removing cgroup {}: still busy after {} ms", path_, timeout.count());
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(20000));
    }
}

Result<> join_cgroup(int leaf_dir_fd, std::string_view what) {
    if (auto r = write_at(leaf_dir_fd, "cgroup.procs", "0"); !r)
        return fail_sys(fmt::format("joining cgroup {}", what),
                        r.error().code != 0 ? r.error().code : EIO);
    return {};
}

}  // namespace stockade::policy
