#pragma once
// PCI passthrough with VFIO: `--device vfio=DDDD:BB:DD.F` (repeatable). The supervisor checks
// each host device (on the policy's allowlist, bound to vfio-pci, its IOMMU group viable and
// free) and opens its container, group and device before anything starts; the sandbox maps
// guest RAM for the device's DMA and builds the guest's view of it (runner/pci/passthrough.hpp).
#include <string>
#include <vector>

#include "base/pci_address.hpp"
#include "runner/registry/device_kind.hpp"
#include "vfio/vfio_device.hpp"

namespace stockade {

struct VfioKind {
    static constexpr std::string_view kName = "vfio";
    static constexpr std::uint32_t kVirtioId = kNotVirtio;  // the guest drives the device itself

    struct Options {
        std::vector<std::string> devices;  // --device TYPE=VALUE
    };
    struct Spec {
        std::vector<PciAddress> devices;
    };
    struct Device {
        PciAddress address;
        vfio::Handles handles;
        vfio::DeviceInfo info;
    };
    using Handed = std::vector<Device>;
    using Host = NoHostState;

    static void add_options(CLI::App& app, Options& options);
    [[nodiscard]] static Result<> apply(const Options& options, Spec& spec);
    [[nodiscard]] static Result<> validate(const Spec& spec);
    [[nodiscard]] static Result<std::optional<Handed>> open(const Spec& spec, OpenContext& ctx);
    [[nodiscard]] static Result<Host> claim(Handed&, const Spec&, ClaimContext&) { return {}; }
    [[nodiscard]] static std::vector<int> fds(const Handed& handed);
    [[nodiscard]] static std::size_t device_count(const Handed& handed) { return handed.size(); }
    [[nodiscard]] static Result<std::vector<BuiltDevice>> build(Handed handed, BuildContext& ctx);
    static void add_seccomp_rules(DeviceThreadProfiles profiles);
};

}  // namespace stockade
