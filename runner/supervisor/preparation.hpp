#pragma once
// Startup steps 1 to 4, in the supervisor: everything a sandbox needs, read, checked and
// opened before anything is created. Validation comes first and host resources (a guest
// CID, a tap) last, once nothing can be refused any more. After this, no path is opened.
#include <functional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "policy/policy.hpp"
#include "policy/selinux_images.hpp"
#include "runner/registry/device_registry.hpp"
#include "runner/supervisor/sandbox_spec.hpp"
#include "runner/vmm/sandbox_resources.hpp"

namespace stockade {

// What the supervisor keeps for the sandbox's life: its id, its policy, and what each
// device kind set up on the host and must tear down (a tap and its filter).
struct SupervisorState {
    std::string id;
    policy::Policy policy;
    DeviceKinds::Hosts hosts;
};

// A restore's last steps, once the host is set up and nothing else can refuse: a sealed
// snapshot's state and memory decrypted (in `cgroup`, the sandbox's leaf, which is charged
// for them), then each writable disk given back the contents it had.
using RestoreSteps = std::vector<std::function<Result<>(SandboxResources&, int cgroup)>>;

struct Preparation {
    SupervisorState supervisor;
    SandboxResources sandbox;  // moved into the sandbox process
    RestoreSteps restore;      // run in order by the caller, last (empty unless a restore)
};

// Reads, checks and opens; fails (naming the field or file) before anything is created.
[[nodiscard]] Result<Preparation> prepare(const SandboxSpec& spec);

// Whether the guest gets a PCI bus: exactly when some device kind will build a device from
// what it was handed (the boot plan and the machine both follow this one answer).
[[nodiscard]] bool plans_pci_bus(const DeviceKinds::Handed& handed);
// The disk images among what the supervisor opened (the kinds with an images() member), for
// their SELinux labels (policy/selinux_images.hpp).
[[nodiscard]] std::vector<policy::ImageFile> disk_images(const DeviceKinds::Handed& handed);

// Fresh sandbox id when none was given: "sb-" and 12 random hex digits.
[[nodiscard]] std::string new_sandbox_id();

// The kernel command line stockade boots with, before the user's --cmdline.
[[nodiscard]] std::string default_kernel_cmdline(bool has_pci);

}  // namespace stockade
