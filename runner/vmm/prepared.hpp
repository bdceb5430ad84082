#pragma once
// Everything a sandbox needs, read, checked and opened by the supervisor before anything is
// created (startup steps 1, 2 and 4): the kernel and initrd contents, the job, every
// descriptor the VM will use, and the policy. After this, no path is opened again.
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/mapping.hpp"
#include "base/unique_fd.hpp"
#include "netsetup/network.hpp"
#include "policy/policy.hpp"
#include "runner/arch/x86/kernel_image.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/vmm/sandbox_spec.hpp"

namespace stockade {

struct PreparedDisk {
    UniqueFd fd;
    bool read_only = false;
    std::string path;
};

// The sandbox's network interface: the tap netsetup made (and tears down with `handle`,
// in the supervisor), and /dev/vhost-net unless the userspace datapath was chosen.
struct PreparedNet {
    std::optional<net::NetworkHandle> handle;
    UniqueFd tap;
    UniqueFd vhost;  // invalid: userspace datapath
    net::MacAddress mac;
    std::optional<std::uint32_t> mtu;
};

// The workload's stdio over vsock: /dev/vhost-vsock with the guest's CID already claimed
// (by the supervisor: the sandbox's seccomp profile has no VHOST_VSOCK_SET_GUEST_CID), and
// a listening socket on `port` that stockade-init connects to (runner/vmm/stdio_relay.hpp).
struct PreparedVsock {
    UniqueFd vhost;
    std::uint32_t cid = 0;
    UniqueFd listener;
    std::uint32_t port = 0;
};

struct Prepared {
    SandboxSpec spec;
    policy::Policy policy;
    std::string id;
    Mapping kernel_file;      // the whole file, as read (and digest-checked)
    x86::KernelImage kernel;  // views into kernel_file
    Mapping initrd;
    std::vector<std::uint8_t> job;
    std::string cmdline;
    std::vector<PreparedDisk> disks;
    std::optional<kvm::Kvm> kvm;
    std::optional<PreparedVsock> vsock;  // none: stdio over the serial console
    std::optional<PreparedNet> net;      // last: set up after everything else was checked
};

// Frees the boot images' memory (kernel file, initrd, job) once they are in guest memory,
// or in the supervisor once the sandbox process has its own copy. The kernel's views into
// the file go with it.
void release_boot_images(Prepared& p);

// Reads, checks and opens; fails (naming the field or file) before anything is created.
[[nodiscard]] Result<Prepared> prepare(const SandboxSpec& spec);

// Fresh sandbox id when none was given: "sb-" and 12 random hex digits.
[[nodiscard]] std::string new_sandbox_id();

}  // namespace stockade
