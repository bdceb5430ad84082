#pragma once
// The contract between the runner (host) and stockade-init (guest PID 1).
// Both sides include this header; nothing else defines these numbers.
#include <array>
#include <cstdint>
#include <string_view>

namespace stockade::guest_abi {

// Paravirtual agent port: stockade-init writes 32-bit values with `outl`. The runner
// ignores any value whose top half is not kMagic (a stray probe cannot end a sandbox).
inline constexpr std::uint16_t kAgentPort = 0x00f4;
inline constexpr std::uint32_t kMagic = 0x5354'0000;  // "ST"

enum class Event : std::uint8_t {
    ready = 1,        // console configured: the runner may start sending stdin
    exited = 2,       // arg = the workload's status in the docker convention (0..255)
    init_failed = 3,  // arg = InitFailure; details were printed on the console
    reboot = 4,       // the guest asked PID 1 to reboot before the workload ended
    poweroff = 5,     // the guest asked PID 1 to power off before the workload ended
};

enum class InitFailure : std::uint8_t {
    bad_job = 1,  // the job archive is missing or malformed
    mount = 2,    // a mount stockade-init needs failed
    console = 3,  // the console could not be configured
    fork = 4,     // the workload process could not be created
    rootfs = 5,   // the root disk could not be mounted
    network = 6,  // the network interface could not be configured
};

// What the runner reports for each InitFailure ("the guest's init failed: " + text); empty
// for a code this table does not know.
[[nodiscard]] constexpr std::string_view init_failure_text(InitFailure f) {
    switch (f) {
        case InitFailure::bad_job:
            return "the job archive is missing or malformed";
        case InitFailure::mount:
            return "a mount failed";
        case InitFailure::console:
            return "the console could not be configured";
        case InitFailure::fork:
            return "the workload process could not be created";
        case InitFailure::rootfs:
            return "the root disk could not be mounted";
        case InitFailure::network:
            return "the network interface could not be configured";
    }
    return {};
}

[[nodiscard]] constexpr std::uint32_t encode(Event e, std::uint8_t arg = 0) {
    return kMagic | (static_cast<std::uint32_t>(e) << 8) | arg;
}
[[nodiscard]] constexpr bool is_agent_value(std::uint32_t v) {
    return (v & 0xffff'0000u) == kMagic;
}
[[nodiscard]] constexpr Event event_of(std::uint32_t v) {
    return static_cast<Event>((v >> 8) & 0xff);
}
[[nodiscard]] constexpr std::uint8_t arg_of(std::uint32_t v) {
    return static_cast<std::uint8_t>(v & 0xff);
}

// Host stdin travels on the serial console. The console runs in canonical mode with every
// special character disabled except VEOF, so the runner ends stdin by sending kEndOfInput.
inline constexpr char kEndOfInput = 0x04;

// The job: a newc cpio archive the runner appends to the initramfs. Files (all optional
// except argv): argv and env hold NUL-terminated items, the others one string without a NUL.
// guest/job.hpp writes and parses them (one format, one parser, for both sides).
inline constexpr std::string_view kJobDir = "/stockade";
inline constexpr std::string_view kJobArgv = "/stockade/argv";        // argv[0], argv[1], ...
inline constexpr std::string_view kJobEnv = "/stockade/env";          // "NAME=value", ...
inline constexpr std::string_view kJobWorkdir = "/stockade/workdir";  // one path
inline constexpr std::string_view kJobHostname = "/stockade/hostname";
// "DEVICE ro|rw": an ext4 disk to mount and run the workload in (chroot), e.g. "/dev/vda rw".
inline constexpr std::string_view kJobRoot = "/stockade/root";
// "MAC A.B.C.D/N [GATEWAY]": stockade-init brings up the interface with that MAC (and lo),
// gives it the address and, when a gateway follows, a default route through it, e.g.
// "02:1a:2b:3c:4d:5e 169.254.10.2/16" or "02:1a:2b:3c:4d:5e 10.88.0.5/16 10.88.0.1".
inline constexpr std::string_view kJobNet = "/stockade/net";

// "PORT" (ten decimal digits, leading zeros): the workload's stdio travels over vsock
// (virtio-vsock on the host's vhost-vsock) instead of the serial console. stockade-init
// connects to the host (CID 2) on PORT once per stream and sends the stream's byte first;
// the host accepts only connections from this guest's CID. Absent: the serial console
// carries stdio (a host without /dev/vhost-vsock).
inline constexpr std::string_view kJobVsock = "/stockade/vsock";
enum class VsockStream : char {
    status = 's',  // guest to host: the workload's status as 4 bytes (little endian), last
    in = 'i',      // host to guest; the host shuts its side down at the end of its input
    out = 'o',     // guest to host; shut down by stockade-init once the workload is gone
    err = 'e',     // guest to host; likewise
    // host to guest, connected first: the host's requests (guest/control.hpp: start,
    // signal, power off, exec); stockade-init sends nothing on it
    control = 'c',
};
// The status stream's 4 bytes: the workload's status, little endian.
using VsockStatus = std::array<std::uint8_t, 4>;
[[nodiscard]] constexpr VsockStatus encode_status(std::uint32_t v) {
    return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
            static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}
[[nodiscard]] constexpr std::uint32_t decode_status(const VsockStatus& b) {
    return b[0] | (std::uint32_t{b[1]} << 8) | (std::uint32_t{b[2]} << 16) |
           (std::uint32_t{b[3]} << 24);
}
static_assert(decode_status(encode_status(0x1234'5678)) == 0x1234'5678);

// Present (holding "wait"): a sandbox made with `stockade create`. stockade-init connects its
// streams, reports ready, and runs the workload only once the control stream says start.
inline constexpr std::string_view kJobWaitStart = "/stockade/wait-start";

// Present (holding "pty"; vsock stdio only): the workload runs on a terminal. stockade-init
// makes a pseudo-terminal (in the container's own devpts when it mounts one), gives the
// workload its slave as stdin, stdout, stderr and controlling terminal, and copies the host's
// in stream to the master and the master to the out stream (err stays empty). The window
// size comes on the control stream (guest/control.hpp, resize).
inline constexpr std::string_view kJobTerminal = "/stockade/terminal";

// How the workload and every exec run (guest/job.hpp's JobProcess; an OCI container's
// process). Lines of tab-separated fields, each field free of tabs, newlines and NULs:
//   user UID GID [GROUP...]          decimal
//   rlimit RESOURCE SOFT HARD        decimal; RESOURCE below RLIM_NLIMITS (16), SOFT <= HARD
//   caps BOUNDING EFFECTIVE PERMITTED INHERITABLE AMBIENT   hex masks
//   no-new-privileges
//   mounts                           the mount lines replace the default /proc, /sys, /dev
//   mount TYPE SOURCE DESTINATION FLAGS DATA   FLAGS hex (MS_*), DATA may be empty
//   read-only-root                   the root disk is remounted read-only after the mounts
//   umask MODE                       octal, 0 to 777
//   pids-max N                       decimal, 1 or more: the container's processes at most
//   mount copy HEX DESTINATION FLAGS MODE      a file of those bytes (hex), MODE octal
//   sysctl KEY VALUE                 KEY of [A-Za-z0-9_.-], VALUE without tab or newline
//   seccomp HEX                      a BPF program: 1 to 4096 struct sock_filter, in hex
//   masked PATH / readonly PATH      absolute paths
inline constexpr std::string_view kJobProcess = "/stockade/process";

// How long stockade-init waits for each connection: the host accepts from a thread that is
// running before the first vCPU is, so this only bounds a host that broke.
inline constexpr int kVsockConnectTimeoutSeconds = 30;

// Virtio devices (virtio 1.x, section 5: device ids) the runner attaches over virtio-pci,
// and the guest module that drives each. stockade-init loads kVirtioTransportModule when
// any device of kVirtioPciVendor is on the PCI bus, then the driver of each device id it
// finds on the virtio bus (the ids it reads from sysfs, "0x%04x").
inline constexpr std::uint16_t kVirtioPciVendor = 0x1af4;
inline constexpr std::uint16_t kVirtioNet = 1, kVirtioBlock = 2, kVirtioRng = 4, kVirtioVsock = 19;
inline constexpr std::string_view kVirtioTransportModule = "virtio_pci";
struct VirtioDriver {
    std::uint16_t device_id;
    std::string_view module;
};
inline constexpr std::array<VirtioDriver, 4> kVirtioDrivers{{
    {kVirtioNet, "virtio_net"},
    {kVirtioBlock, "virtio_blk"},
    {kVirtioRng, "virtio_rng"},
    {kVirtioVsock, "vmw_vsock_virtio_transport"},
}};
// The module of a device id; empty for one stockade-init has no driver for.
[[nodiscard]] constexpr std::string_view virtio_driver_module(std::uint32_t device_id) {
    for (const VirtioDriver& d : kVirtioDrivers)
        if (d.device_id == device_id) return d.module;
    return {};
}
// The root disk's file system (kJobRoot).
inline constexpr std::string_view kRootFsModule = "ext4";
// Every module stockade-init loads by name: the image must carry each of them
// (guest/CMakeLists.txt's STOCKADE_GUEST_MODULES; a unit test compares the two).
inline constexpr std::array<std::string_view, 6> kGuestModules{
    kVirtioTransportModule,   kVirtioDrivers[0].module, kVirtioDrivers[1].module,
    kVirtioDrivers[2].module, kVirtioDrivers[3].module, kRootFsModule};

// Module lists written by the image builder: /etc/stockade/modules/<name> holds the .ko
// paths to load, dependencies first; /etc/stockade/autoload holds names to load at boot.
inline constexpr std::string_view kModuleListDir = "/etc/stockade/modules";
inline constexpr std::string_view kAutoloadList = "/etc/stockade/autoload";
// The release of the kernel an initramfs without modules was made for (stockade-mkimage
// initramfs --kernel-release; stockade's own kernel has its drivers built in): the runner
// refuses that initramfs with a kernel of another release, which would find no drivers in it.
inline constexpr std::string_view kKernelReleaseFile = "/etc/stockade/kernel-release";

}  // namespace stockade::guest_abi
