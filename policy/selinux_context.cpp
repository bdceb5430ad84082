#include "policy/selinux_context.hpp"

#include <fcntl.h>
#include <selinux/selinux.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>

#include "base/log.hpp"
#include "base/sha256.hpp"

namespace stockade::policy {
namespace {

constexpr std::uint32_t kOrderedPairs = kMcsCategories * (kMcsCategories - 1u);

struct ConFree {
    void operator()(char* c) const noexcept { freecon(c); }
};

Result<> make_dirs(const std::string& path) {
    for (std::size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos != path.size() && path[pos] != '/') continue;
        std::string prefix = path.substr(0, pos);
        if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
            return fail_sys(fmt::format("creating directory {}", prefix));
    }
    return {};
}

std::string trim_context(std::string s) {
    while (!s.empty() && (s.back() == '\0' || s.back() == '\n'))
        s.pop_back();
    return s;
}

}  // namespace

SelinuxState selinux_state() {
    SelinuxState s;
    s.enabled = is_selinux_enabled() > 0;
    s.enforcing = s.enabled && security_getenforce() == 1;
    return s;
}

std::string sandbox_context(const SelinuxPolicy& p, McsPair c) {
    return fmt::format("{}:{}:{}:{}:c{},c{}", p.user, p.role, p.type, p.sensitivity, c.low, c.high);
}

McsPair mcs_candidate(std::string_view sandbox_id, std::uint32_t probe) {
    const Sha256 md = sha256(sandbox_id);
    std::uint64_t h = 0;
    for (int i = 0; i < 8; ++i)
        h = h << 8 | md[static_cast<std::size_t>(i)];
    // k walks all ordered pairs (a, b), a != b: a = k / 1023, b = a + 1 + k % 1023 (mod 1024).
    const std::uint32_t k = static_cast<std::uint32_t>((h + probe) % kOrderedPairs);
    const auto a = static_cast<std::uint16_t>(k / (kMcsCategories - 1u));
    const auto b =
        static_cast<std::uint16_t>((a + 1u + k % (kMcsCategories - 1u)) % kMcsCategories);
    return McsPair{std::min(a, b), std::max(a, b)};
}

McsReservation::~McsReservation() {
    // Unlink while still holding the lock: a process that opened the old file notices (its
    // inode no longer matches the path) and tries again.
    if (lock_ && !path_.empty()) ::unlink(path_.c_str());
}

Result<std::optional<McsReservation>> McsReservation::try_reserve(const std::string& registry_dir,
                                                                  McsPair pair) {
    if (pair.low >= pair.high || pair.high >= kMcsCategories)
        return fail("MCS categories c{},c{}: expected two different categories below {}", pair.low,
                    pair.high, kMcsCategories);
    STOCKADE_TRY_VOID(make_dirs(registry_dir));
    std::string path = fmt::format("{}/c{},c{}", registry_dir, pair.low, pair.high);
    for (int attempt = 0; attempt < 16; ++attempt) {
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) return fail_sys(fmt::format("open {}", path));
        UniqueFd lock(fd);
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) return std::nullopt;  // a live sandbox holds it
            return fail_sys(fmt::format("flock {}", path));
        }
        struct stat held {
        }, named{};
        if (::fstat(fd, &held) != 0) return fail_sys(fmt::format("fstat {}", path));
        if (::stat(path.c_str(), &named) == 0 && named.st_ino == held.st_ino &&
            named.st_dev == held.st_dev) {
            McsReservation r;
            r.pair_ = pair;
            r.path_ = std::move(path);
            r.lock_ = std::move(lock);
            return r;
        }
        // Unlinked (released) between our open and our lock: take the new file instead.
    }
    return fail("MCS categories c{},c{}: {} keeps changing under us", pair.low, pair.high, path);
}

Result<> McsReservation::release_stale(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return {};
        return fail_sys(fmt::format("open {}", path));
    }
    UniqueFd lock(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) return {};  // a live sandbox holds the pair now
        return fail_sys(fmt::format("flock {}", path));
    }
    struct stat held {
    }, named{};
    // Only the file we hold: one that replaced it belongs to whoever made it.
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 &&
        named.st_ino == held.st_ino && named.st_dev == held.st_dev && ::unlink(path.c_str()) != 0)
        return fail_sys(fmt::format("removing {}", path));
    return {};
}

bool McsReservation::held(const std::string& registry_dir, std::string_view categories) {
    unsigned low = 0, high = 0;
    char tail = 0;
    const std::string text(categories);
    if (std::sscanf(text.c_str(), "c%u,c%u%c", &low, &high, &tail) != 2 || low >= high ||
        high >= kMcsCategories)
        return false;
    const int fd = ::open(fmt::format("{}/c{},c{}", registry_dir, low, high).c_str(),
                          O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return false;
    UniqueFd lock(fd);
    return ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

Result<McsReservation> McsReservation::reserve(const std::string& registry_dir, McsPair pair) {
    auto r = STOCKADE_TRY(try_reserve(registry_dir, pair));
    if (!r)
        return fail("MCS categories c{},c{} are held by another sandbox (registry {})", pair.low,
                    pair.high, registry_dir);
    return std::move(*r);
}

Result<McsReservation> McsReservation::reserve_auto(const std::string& registry_dir,
                                                    std::string_view sandbox_id) {
    STOCKADE_TRY_VOID(check_sandbox_id(sandbox_id));
    for (std::uint32_t probe = 0; probe < kOrderedPairs; ++probe) {
        auto r = STOCKADE_TRY(try_reserve(registry_dir, mcs_candidate(sandbox_id, probe)));
        if (r) return std::move(*r);
    }
    return fail("no free MCS category pair in {}", registry_dir);
}

Result<std::optional<SandboxLabel>> plan_sandbox_label(const SelinuxPolicy& policy,
                                                       std::string_view sandbox_id,
                                                       const std::string& registry_dir) {
    if (policy.mode == SelinuxMode::off) return std::nullopt;
    const auto state = selinux_state();
    if (policy.mode == SelinuxMode::required && !state.enforcing)
        return fail(
            "SELinux: the policy requires it (/selinux/mode \"required\") but it is {}: refusing "
            "to start",
            state.enabled ? "permissive" : "not enabled");
    if (!state.enabled) return std::nullopt;
    auto reservation = policy.categories
                           ? STOCKADE_TRY(McsReservation::reserve(registry_dir, *policy.categories))
                           : STOCKADE_TRY(McsReservation::reserve_auto(registry_dir, sandbox_id));
    auto context = sandbox_context(policy, reservation.pair());
    if (security_check_context(context.c_str()) != 0)
        return fail(
            "SELinux: context {} is not valid in the loaded policy (is the stockade module "
            "installed? semodule -i stockade.pp)",
            context);
    return SandboxLabel{std::move(context), std::move(reservation)};
}

Result<SelinuxSwitch> SelinuxSwitch::prepare(std::string context) {
    if (security_check_context(context.c_str()) != 0)
        return fail("SELinux: context {} is not valid in the loaded policy", context);
    int fd = ::open("/proc/thread-self/attr/current", O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail_sys("SELinux: open /proc/thread-self/attr/current");
    return SelinuxSwitch(std::move(context), UniqueFd(fd));
}

Result<> SelinuxSwitch::apply() {
    // As libselinux's setcon: the context with its terminating NUL, at offset 0.
    if (::pwrite(attr_.get(), context_.c_str(), context_.size() + 1, 0) < 0)
        return fail_sys(fmt::format("SELinux: switching to {}", context_));
    // Read back without /proc: reading the attribute descriptor again would be a read of a
    // file labelled with the old domain; a socket made now carries the new context, which
    // SO_PEERSEC of its peer reports.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return fail_sys("SELinux: socketpair to check the new context");
    UniqueFd a(sv[0]), b(sv[1]);
    char buf[512] = {};
    socklen_t len = sizeof buf - 1;
    if (::getsockopt(a.get(), SOL_SOCKET, SO_PEERSEC, buf, &len) != 0)
        return fail_sys("SELinux: SO_PEERSEC to check the new context");
    auto now = trim_context(std::string(buf, len));
    if (now != context_)
        return fail("SELinux: after switching to {} the context is {}", context_, now);
    return {};
}

Result<> switch_context(const std::string& context) {
    if (setcon(context.c_str()) != 0) return fail_sys(fmt::format("SELinux: setcon({})", context));
    auto now = STOCKADE_TRY(current_context());
    if (now != context) return fail("SELinux: after setcon({}) the context is {}", context, now);
    return {};
}

Result<std::string> current_context() {
    char* raw = nullptr;
    if (getcon(&raw) != 0) return fail_sys("SELinux: getcon");
    std::unique_ptr<char, ConFree> con(raw);
    return trim_context(con.get());
}

}  // namespace stockade::policy
