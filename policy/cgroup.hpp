#pragma once
// The per-sandbox cgroup v2 leaf (startup step 3): <parent>/<sandbox id>, with the policy's
// limits written before any process joins it. The parent is created when missing and the
// controllers the limits need are enabled along the way down from the cgroup2 mount.
// Removing the leaf kills whatever is still inside (cgroup.kill) and waits until it is empty:
// nothing is left behind. The parent stays (it is shared by every sandbox).
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "policy/policy.hpp"

namespace stockade::policy {

class CgroupLeaf {
  public:
    CgroupLeaf(CgroupLeaf&& o) noexcept
        : path_(std::exchange(o.path_, std::string())), dir_(std::move(o.dir_)) {}
    CgroupLeaf& operator=(CgroupLeaf&& o) noexcept;
    CgroupLeaf(const CgroupLeaf&) = delete;
    CgroupLeaf& operator=(const CgroupLeaf&) = delete;
    ~CgroupLeaf();

    // Creates <limits.parent>/<sandbox_id> (failing when it exists: another sandbox's) and
    // writes the limits. On failure nothing is left (the half-made leaf is removed).
    [[nodiscard]] static Result<CgroupLeaf> create(const CgroupPolicy& limits,
                                                   std::string_view sandbox_id);

    // The leaf at `path`, made by a supervisor that is gone (`stockade rm`), so that remove()
    // can kill what is left in it; nullopt when it no longer exists.
    [[nodiscard]] static Result<std::optional<CgroupLeaf>> adopt(const std::string& path);

    [[nodiscard]] const std::string& path() const { return path_; }
    // An O_DIRECTORY descriptor of the leaf, for join_self() after paths are gone.
    [[nodiscard]] int dir_fd() const { return dir_.get(); }

    // Moves a process (with all its threads) into the leaf.
    [[nodiscard]] Result<> add_process(pid_t pid) const;
    // Reads one of the leaf's files (e.g. "memory.max"), without the trailing newline.
    [[nodiscard]] Result<std::string> read(std::string_view file) const;

    // Kills what is left inside, waits for it to be gone, removes the directory.
    [[nodiscard]] Result<> remove(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  private:
    CgroupLeaf(std::string path, UniqueFd dir) : path_(std::move(path)), dir_(std::move(dir)) {}
    std::string path_;  // empty once removed
    UniqueFd dir_;
};

// Moves the calling process into the leaf whose directory descriptor is `leaf_dir_fd` (writes
// "0" to its cgroup.procs). For the sandbox child, before it makes its cgroup namespace, so
// that the namespace's root is the leaf.
[[nodiscard]] Result<> join_cgroup(int leaf_dir_fd, std::string_view what);

}  // namespace stockade::policy
