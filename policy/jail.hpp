#pragma once
// The jail (startup step 5, after fork_into_namespaces()): the sandbox process sees a
// read-only tmpfs as its root with only the policy's bind mounts (read-only unless marked
// writable) and, when asked, a fresh /proc of its own PID namespace; its rlimits are set and
// every descriptor not on the keep list is closed.
//
// On the host there is only an empty per-sandbox directory (JailRoot), made before the fork
// and removed at teardown: the tmpfs and the binds are mounted on it inside the sandbox's own
// mount namespace, so they vanish with the sandbox and nothing is ever written to the host.
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "policy/policy.hpp"

namespace stockade::policy {

// <root_parent>/<sandbox id>, created empty (mode 0700), removed by remove()/the destructor.
class JailRoot {
  public:
    JailRoot(JailRoot&& o) noexcept : path_(std::exchange(o.path_, std::string())) {}
    JailRoot& operator=(JailRoot&& o) noexcept;
    JailRoot(const JailRoot&) = delete;
    JailRoot& operator=(const JailRoot&) = delete;
    ~JailRoot();

    // `owner`: who may enter it. Leave unset for a sandbox without a user namespace (it is
    // still root when it mounts its jail). A sandbox in a user namespace started by root runs
    // as its mapped ids before the jail and cannot enter a directory of the unmapped root:
    // pass {policy.uid, policy.gid} then.
    struct Owner {
        std::uint32_t uid, gid;
    };
    [[nodiscard]] static Result<JailRoot> create(const std::string& root_parent,
                                                 std::string_view sandbox_id,
                                                 std::optional<Owner> owner = std::nullopt);
    // The root at `path`, made by a supervisor that is gone (`stockade rm`), to remove().
    [[nodiscard]] static JailRoot adopt(std::string path) { return JailRoot(std::move(path)); }
    [[nodiscard]] const std::string& path() const { return path_; }
    // rmdir only: a root that is not empty was written from outside the jail and is left in
    // place for inspection, with an error.
    [[nodiscard]] Result<> remove();

  private:
    explicit JailRoot(std::string path) : path_(std::move(path)) {}
    std::string path_;
};

struct JailSpec {
    std::string root;  // JailRoot::path()
    std::vector<BindMount> binds;
    bool mount_proc = false;
    std::map<Rlimit, std::uint64_t> rlimits;
    std::vector<int> keep_fds;  // kept open besides 0, 1 and 2
};

// The owner JailRoot::create needs for this policy: the sandbox's ids when it runs in a user
// namespace made by root, else none.
[[nodiscard]] std::optional<JailRoot::Owner> jail_root_owner(const Policy& policy);

// The policy's part of a JailSpec.
[[nodiscard]] JailSpec jail_spec(const Policy& policy, const std::string& root,
                                 std::vector<int> keep_fds);

// All of the jail, in order: pivot_into(), apply_rlimits(), close_fds_except_kept().
// Errors name the step: "jail: pivot_root into /run/stockade/jail/sb-1: Invalid argument".
[[nodiscard]] Result<> enter_jail(const JailSpec& spec);

// The steps on their own. pivot_into needs a private mount namespace of its own.
[[nodiscard]] Result<> pivot_into(const std::string& root, std::span<const BindMount> binds,
                                  bool mount_proc);
// soft = hard = the value (so it cannot be raised again); kUnlimited: RLIM_INFINITY.
[[nodiscard]] Result<> apply_rlimits(const std::map<Rlimit, std::uint64_t>& rlimits);
// close_range(2) over everything >= 3 not in keep; needs no /proc (gone after the pivot).
[[nodiscard]] Result<> close_fds_except_kept(std::span<const int> keep);

}  // namespace stockade::policy
