#pragma once
// What the supervisor hands to the sandbox process, and nothing else: the checked boot plan,
// /dev/kvm, and each device kind's descriptors. The supervisor builds it (runner/supervisor/
// preparation.hpp) and moves it into the sandbox process, which closes every inherited
// descriptor that is not in fds(). What the supervisor keeps is a type of its own
// (SupervisorState), so neither process has to clear the other's fields by hand.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/mapping.hpp"
#include "policy/policy.hpp"
#include "runner/arch/x86/kernel_image.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/registry/device_registry.hpp"
#include "runner/supervisor/sandbox_spec.hpp"

namespace stockade {

// The guest's boot, checked once in preparation; the machine takes it as it is.
struct BootPlan {
    Mapping kernel_file;      // the whole file, as read (and digest-checked)
    x86::KernelImage kernel;  // views into kernel_file
    Mapping initrd;
    std::vector<std::uint8_t> job;  // appended to the initrd
    std::string cmdline;
    x86::BootLayout layout;
    bool has_pci = false;  // some device kind builds a device

    // Frees the images (kernel file, initrd, job) once they are in guest memory; the
    // kernel's views into the file go with them.
    void release();
};

struct SandboxResources {
    std::string id;    // the sandbox's id
    SandboxSpec spec;  // sizes and switches (vcpus, memory, --console, --stats)
    policy::Policy policy;
    BootPlan boot;
    std::optional<kvm::Kvm> kvm;  // the system descriptor: closed once the VM exists
    DeviceKinds::Handed devices;
    UniqueFd api_listener;  // the control API's listening socket; invalid: no API
    UniqueFd metrics_file;  // --metrics-path, opened for appending; invalid: none
    // The write end of a pipe the supervisor reads: one SandboxStatus byte per change
    // (runner/vmm/sandbox_status.hpp), never blocking; invalid: nobody listens
    UniqueFd status_pipe;
    // A restore (SandboxSpec::restore_from): the snapshot's state part, decoded only in the
    // jailed sandbox, and its memory part, mapped copy-on-write as guest RAM; both read-only.
    UniqueFd restore_state, restore_memory;
    // The memory is a file of the sandbox's own (a sealed snapshot's, decrypted into a memory
    // file): mapped shared, not copied on write.
    bool restore_memory_shared = false;
    // A lazy sealed restore instead of restore_memory: the socket to the memory loader
    // (runner/vmm/lazy_memory.hpp), which fills anonymous guest RAM.
    UniqueFd restore_loader;
    // When the supervisor began preparing (steady clock, which the forked sandbox process
    // shares), and how long reading and checking the boot images took: the start of
    // `--stats`'s timeline.
    std::chrono::steady_clock::time_point prepare_started{};
    std::int64_t images_read_us = 0;

    // Every descriptor this carries: the sandbox process keeps these and closes the rest.
    [[nodiscard]] std::vector<int> fds() const;
};

}  // namespace stockade
