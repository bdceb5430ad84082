#pragma once
// The whole of a paused machine's state as a snapshot's "state" part keeps it, and its bytes
// (base/state_codec.hpp): the vCPUs, the VM's interrupt controllers, timer and clock, the
// UART, the PCI bus's BAR placements, and each virtio function's transport and device.
// Guest memory and disks are parts of their own.
//
// Decoding checks every count against the machine the format describes (at most 254 vCPUs,
// 31 PCI functions in slots 1..31, each once and in order, 1024 queues and 2048 MSI-X
// vectors a function, the UART's input bound)
// and refuses a value no capture could have produced; what a state means for a particular
// machine (the right number of vCPUs, the same functions in the same slots) is checked when
// it is restored into it.
#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "runner/devices/serial.hpp"
#include "runner/kvm/vcpu_state.hpp"
#include "runner/pci/pci_bus.hpp"
#include "runner/virtio/pci_transport.hpp"

namespace stockade {

inline constexpr std::uint32_t kMachineStateVersion = 1;

struct FunctionState {
    std::uint8_t slot = 0;  // on PCI bus 0
    virtio::TransportState transport;
    virtio::DeviceState device;
};

struct MachineState {
    std::vector<kvm::VcpuState> vcpus;
    kvm::VmState vm;
    SerialState serial;
    pci::PciBusState pci;
    std::vector<FunctionState> functions;
};

[[nodiscard]] std::vector<std::uint8_t> encode_machine_state(const MachineState& state);
[[nodiscard]] Result<MachineState> decode_machine_state(std::span<const std::uint8_t> bytes);

}  // namespace stockade
