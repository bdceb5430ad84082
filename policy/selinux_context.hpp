#pragma once
// The sandbox's SELinux context (startup step 6), sVirt style: every sandbox runs in the
// stockade_t domain (selinux/stockade.te) at s0 with its own pair of MCS categories, so two
// sandboxes cannot open each other's files even though they share the domain and the uid.
//
// "auto" categories: the first candidate pair is derived from SHA-256 of the sandbox id
// (the same id gets the same pair while it is free, which makes labels predictable for
// operators); a candidate is taken by creating and flock()ing <registry>/cLOW,cHIGH, and a pair
// that is locked by a live sandbox is skipped (linear probing), so no two live sandboxes using
// the same registry directory ever share a pair. A stale file left by a crash is not locked
// and is simply reused. The reservation lasts as long as the McsReservation object; keep it
// in the supervisor for the sandbox's lifetime.
//
// Switching: the sandbox process does not exec, so the switch is a dynamic transition
// (setcon; the module allows the runner's domain dyntransition to stockade_t). It must happen
// before the process starts threads (the kernel refuses a dynamic transition of a
// multi-threaded process unless the new domain is bounded by the old). Because it comes after
// pivot_root, when /proc may be gone, SelinuxSwitch opens /proc/thread-self/attr/current
// before the jail and writes it after.
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "policy/policy.hpp"

namespace stockade::policy {

struct SelinuxState {
    bool enabled = false;
    bool enforcing = false;
};
[[nodiscard]] SelinuxState selinux_state();

// user:role:type:sensitivity:cLOW,cHIGH
[[nodiscard]] std::string sandbox_context(const SelinuxPolicy& policy, McsPair categories);

// The first candidate of "auto" for an id (deterministic), and the i-th probe after it.
[[nodiscard]] McsPair mcs_candidate(std::string_view sandbox_id, std::uint32_t probe);

class McsReservation {
  public:
    McsReservation() = default;
    McsReservation(McsReservation&&) noexcept = default;
    McsReservation& operator=(McsReservation&&) noexcept = default;
    ~McsReservation();

    // A fixed pair: reserved all the same, so an "auto" sandbox cannot take it meanwhile.
    // Fails when a live sandbox holds it.
    [[nodiscard]] static Result<McsReservation> reserve(const std::string& registry_dir,
                                                        McsPair pair);
    // "auto": see the header comment.
    [[nodiscard]] static Result<McsReservation> reserve_auto(const std::string& registry_dir,
                                                             std::string_view sandbox_id);
    // The registry file `path` of a supervisor that is gone (`stockade rm`): removed unless a
    // live sandbox has taken the pair since.
    [[nodiscard]] static Result<> release_stale(const std::string& path);
    // Whether a live sandbox holds the pair named "cLOW,cHIGH" in the registry (false for a
    // pair never reserved, one whose supervisor is gone, or text that names no pair).
    [[nodiscard]] static bool held(const std::string& registry_dir, std::string_view categories);
    [[nodiscard]] McsPair pair() const { return pair_; }
    // The registry file that holds the reservation.
    [[nodiscard]] const std::string& path() const { return path_; }
    // The lock's descriptor: the sandbox process closes its inherited copy.
    [[nodiscard]] int lock_fd() const { return lock_.get(); }

  private:
    // nullopt: a live sandbox holds the pair.
    [[nodiscard]] static Result<std::optional<McsReservation>> try_reserve(
        const std::string& registry_dir, McsPair pair);
    McsPair pair_;
    std::string path_;
    UniqueFd lock_;
};

// Decides from the policy's mode and the host's state whether to switch: nullopt for "off",
// or "if-enabled" on a host without SELinux; an error for "required" when SELinux is not
// enabled and enforcing. Otherwise reserves the categories and returns the context.
struct SandboxLabel {
    std::string context;
    McsReservation reservation;
};
[[nodiscard]] Result<std::optional<SandboxLabel>> plan_sandbox_label(
    const SelinuxPolicy& policy, std::string_view sandbox_id, const std::string& registry_dir);

// The switch itself, in two halves around the jail (see above). prepare() validates the
// context with the loaded policy and opens the attribute file of the calling thread; add fd()
// to the jail's keep list; apply() writes it and checks the result (SO_PEERSEC of a fresh
// socketpair, which needs no /proc: stockade_t may create unix sockets of its own).
class SelinuxSwitch {
  public:
    [[nodiscard]] static Result<SelinuxSwitch> prepare(std::string context);
    [[nodiscard]] int fd() const { return attr_.get(); }
    [[nodiscard]] const std::string& context() const { return context_; }
    [[nodiscard]] Result<> apply();

  private:
    SelinuxSwitch(std::string context, UniqueFd attr)
        : context_(std::move(context)), attr_(std::move(attr)) {}
    std::string context_;
    UniqueFd attr_;
};

// setcon() through libselinux, checked with getcon(), for callers that still have /proc.
[[nodiscard]] Result<> switch_context(const std::string& context);
[[nodiscard]] Result<std::string> current_context();

}  // namespace stockade::policy
