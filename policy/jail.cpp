#include "policy/jail.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/log.hpp"
#include "base/unique_fd.hpp"

namespace stockade::policy {
namespace {

// mkdir -p of `rel` (absolute within base) under `base`, which must exist. Existing
// components are left alone (stat first: in a user namespace mkdir of a directory owned by an
// unmapped id fails with EOVERFLOW rather than EEXIST).
Result<> make_dirs(const std::string& base, const std::string& rel, mode_t mode) {
    for (std::size_t pos = 1; pos <= rel.size(); ++pos) {
        if (pos != rel.size() && rel[pos] != '/') continue;
        std::string path = base + rel.substr(0, pos);
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
            if (!S_ISDIR(st.st_mode)) return fail("creating directory {}: not a directory", path);
            continue;
        }
        if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
            return fail_sys(fmt::format("creating directory {}", path));
    }
    return {};
}

// Mount flags a bind must keep: in a user namespace the kernel locks them, and dropping one
// in the remount would fail with EPERM.
unsigned long locked_flags_of(const std::string& source) {
    struct statvfs st {};
    if (::statvfs(source.c_str(), &st) != 0) return 0;
    unsigned long flags = 0;
    if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
    if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

Result<> bind_into(const std::string& root, const BindMount& b) {
    struct stat st {};
    if (::stat(b.source.c_str(), &st) != 0)
        return fail_sys(fmt::format("bind source {}", b.source));
    const std::string target = root + b.target;
    STOCKADE_TRY_VOID(make_dirs(root, b.target.substr(0, b.target.rfind('/')), 0755));
    if (S_ISDIR(st.st_mode)) {
        if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST)
            return fail_sys(fmt::format("creating bind target {}", b.target));
    } else {
        int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return fail_sys(fmt::format("creating bind target {}", b.target));
        ::close(fd);
    }
    if (::mount(b.source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
        return fail_sys(fmt::format("bind-mounting {} on {}", b.source, b.target));
    // The VMM never executes anything, from a bind or elsewhere.
    unsigned long flags =
        MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | locked_flags_of(b.source);
    if (!b.writable) flags |= MS_RDONLY;
    if (::mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0)
        return fail_sys(fmt::format("remounting bind {} {}", b.target,
                                    (flags & MS_RDONLY) ? "read-only" : "nosuid,nodev,noexec"));
    return {};
}

std::string rlimit_constant(Rlimit r) {
    std::string out = "RLIMIT_";
    for (char c : rlimit_name(r))
        out.push_back(static_cast<char>(c - 'a' + 'A'));
    return out;
}

}  // namespace

JailRoot& JailRoot::operator=(JailRoot&& o) noexcept {
    if (this != &o) {
        if (auto r = remove(); !r) log::warn("{}", r.error().message);
        path_ = std::exchange(o.path_, std::string());
    }
    return *this;
}

JailRoot::~JailRoot() {
    if (auto r = remove(); !r) log::warn("{}", r.error().message);
}

Result<JailRoot> JailRoot::create(const std::string& root_parent, std::string_view sandbox_id,
                                  std::optional<Owner> owner) {
    STOCKADE_TRY_VOID(check_sandbox_id(sandbox_id));
    if (root_parent.empty() || root_parent.front() != '/')
        return fail("jail root parent \"{}\": expected an absolute path", root_parent);
    STOCKADE_TRY_VOID(make_dirs("", root_parent, 0755));
    std::string path = fmt::format("{}/{}", root_parent, sandbox_id);
    if (::mkdir(path.c_str(), 0700) != 0) {
        if (errno == EEXIST)
            return fail("creating jail root {}: it already exists (another sandbox with this id?)",
                        path);
        return fail_sys(fmt::format("creating jail root {}", path));
    }
    JailRoot root(std::move(path));
    if (owner && ::chown(root.path_.c_str(), owner->uid, owner->gid) != 0)
        return fail_sys(fmt::format("chown {} to {}:{}", root.path_, owner->uid, owner->gid));
    return root;
}

Result<> JailRoot::remove() {
    if (path_.empty()) return {};
    if (::rmdir(path_.c_str()) != 0 && errno != ENOENT) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return fail(
                "removing jail root {}: not empty (written from outside the jail); left "
                "in place for inspection",
                path_);
        return fail_sys(fmt::format("removing jail root {}", path_));
    }
    path_.clear();
    return {};
}

std::optional<JailRoot::Owner> jail_root_owner(const Policy& policy) {
    if (policy.namespaces.has(Namespace::user) && ::geteuid() == 0)
        return JailRoot::Owner{policy.uid, policy.gid};
    return std::nullopt;
}

JailSpec jail_spec(const Policy& policy, const std::string& root, std::vector<int> keep_fds) {
    return JailSpec{root, policy.jail.binds, policy.jail.mount_proc, policy.rlimits,
                    std::move(keep_fds)};
}

Result<> pivot_into(const std::string& root, std::span<const BindMount> binds, bool mount_proc) {
    // Small and read-only once set up: the root holds mount points only.
    if (::mount("tmpfs", root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=0755,size=64k,nr_inodes=256") != 0)
        return fail_sys(fmt::format("mounting the jail's tmpfs on {}", root));
    for (const auto& b : binds)
        STOCKADE_TRY_VOID(bind_into(root, b));
    if (mount_proc) {
        std::string proc = root + "/proc";
        if (::mkdir(proc.c_str(), 0555) != 0 && errno != EEXIST)
            return fail_sys("creating /proc in the jail");
        if (::mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
            return fail_sys("mounting a fresh /proc in the jail");
    }
    // pivot_root(".", ".") stacks the old root on the new one; detaching "." then drops it
    // without needing a directory for it inside the jail.
    if (::chdir(root.c_str()) != 0) return fail_sys(fmt::format("chdir to {}", root));
    if (::syscall(SYS_pivot_root, ".", ".") != 0)
        return fail_sys(fmt::format("pivot_root into {}", root));
    if (::umount2(".", MNT_DETACH) != 0) return fail_sys("detaching the old root");
    if (::chdir("/") != 0) return fail_sys("chdir to the jail's /");
    if (::mount(nullptr, "/", nullptr,
                MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        return fail_sys("making the jail root read-only");
    return {};
}

Result<> apply_rlimits(const std::map<Rlimit, std::uint64_t>& rlimits) {
    for (const auto& [r, value] : rlimits) {
        rlim_t v = value == kUnlimited ? RLIM_INFINITY : static_cast<rlim_t>(value);
        struct rlimit lim {
            v, v
        };
        if (::setrlimit(rlimit_resource(r), &lim) != 0)
            return fail_sys(fmt::format(
                "setting {} to {}", rlimit_constant(r),
                value == kUnlimited ? std::string("unlimited") : fmt::format("{}", value)));
    }
    return {};
}

Result<> close_fds_except_kept(std::span<const int> keep) {
    std::vector<unsigned> kept;
    for (int fd : keep)
        if (fd >= 3) kept.push_back(static_cast<unsigned>(fd));
    std::sort(kept.begin(), kept.end());
    unsigned next = 3;
    for (unsigned fd : kept) {
        if (fd > next && ::close_range(next, fd - 1, 0) != 0)
            return fail_sys(fmt::format("closing descriptors {}..{}", next, fd - 1));
        next = fd + 1;
    }
    if (::close_range(next, ~0u, 0) != 0)
        return fail_sys(fmt::format("closing descriptors from {}", next));
    return {};
}

Result<> enter_jail(const JailSpec& spec) {
    if (auto r = pivot_into(spec.root, spec.binds, spec.mount_proc); !r)
        return std::unexpected(std::move(r).error().context("jail"));
    if (auto r = apply_rlimits(spec.rlimits); !r)
        return std::unexpected(std::move(r).error().context("jail"));
    if (auto r = close_fds_except_kept(spec.keep_fds); !r)
        return std::unexpected(std::move(r).error().context("jail"));
    return {};
}

}  // namespace stockade::policy
