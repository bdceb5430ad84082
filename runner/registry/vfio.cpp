#include "runner/registry/vfio.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>
#include <set>

#include <CLI/CLI.hpp>

#include "base/log.hpp"
#include "base/mapping.hpp"
#include "base/uapi.hpp"
#include "runner/pci/passthrough.hpp"
#include "vfio/host_device.hpp"

namespace stockade {
namespace {

constexpr std::string_view kVfioPrefix = "vfio=";

// One passed-through device in the sandbox process: its descriptors, its BAR mappings, and
// the host side of the guest's view of it.
class VfioSource final : public pci::PassthroughSource, public pci::PassthroughIo {
  public:
    explicit VfioSource(VfioKind::Device d) : d_(std::move(d)) {}

    std::string name() const override { return "vfio " + d_.address.str(); }

    Result<std::unique_ptr<pci::PciDevice>> attach(const GuestMemory& memory, pci::BarSlots& slots,
                                                   kvm::MsiRouter& router) override {
        const std::string n = name();
        // All of guest RAM, at its guest-physical addresses: the device's DMA goes through
        // the IOMMU to the very pages the guest's driver names. This pins them (the sandbox
        // is still privileged here; its rlimits and jail come after).
        for (const auto& r : memory.host_regions()) {
            auto mapped = vfio::map_dma(d_.handles.container.get(), r.guest_phys, r.size, r.host);
            if (!mapped) return std::unexpected(std::move(mapped).error().context(n));
        }
        if (d_.info.flags & VFIO_DEVICE_FLAGS_RESET) {
            if (auto r = vfio::reset(d_.handles.device.get()); !r)
                return std::unexpected(std::move(r).error().context(n));
        } else {
            log::warn("{}: the device has no reset the kernel can do; it starts as it is", n);
        }
        pci::PassthroughSetup setup;
        setup.name = n;
        setup.msix_vectors = d_.info.msix_vectors;
        STOCKADE_TRY_VOID(read(pci::kConfigRegion, 0, setup.config));
        for (std::uint32_t i = 0; i < 6; ++i) {
            const vfio::Region& region = d_.info.regions[i];
            std::uint32_t reg = 0;
            std::memcpy(&reg, setup.config.data() + pci::kOffBar0 + 4 * i, 4);
            if (region.size == 0) continue;
            if (reg & 1) {
                log::warn("{}: I/O BAR {} is not offered to the guest", n, i);
                continue;
            }
            pci::PassthroughBar& bar = setup.bars[i];
            bar.size = region.size;
            bar.is_64bit = ((reg >> 1) & 3) == 2;
            if (!region.mappable.empty()) {
                auto m =
                    Mapping::of_fd(d_.handles.device.get(), region.size, PROT_READ | PROT_WRITE,
                                   MAP_SHARED, static_cast<off_t>(region.offset));
                if (m) {
                    bar.host = m->data();
                    bar.mappable = region.mappable;
                    bars_.push_back(std::move(*m));
                } else {
                    log::warn("{}: BAR {} stays trapped: {}", n, i, m.error().message);
                }
            }
            if (bar.is_64bit) ++i;  // its upper half
        }
        auto f = pci::PassthroughFunction::create(std::move(setup), *this, slots, router);
        if (!f) return std::unexpected(std::move(f).error());
        return std::unique_ptr<pci::PciDevice>(std::move(*f));
    }

    Result<> read(std::uint32_t region, std::uint64_t offset,
                  std::span<std::uint8_t> out) override {
        return vfio::read_at(d_.handles.device.get(), d_.info.regions.at(region).offset + offset,
                             out);
    }
    Result<> write(std::uint32_t region, std::uint64_t offset,
                   std::span<const std::uint8_t> in) override {
        return vfio::write_at(d_.handles.device.get(), d_.info.regions.at(region).offset + offset,
                              in);
    }
    Result<> set_msix(std::span<const int> event_fds) override {
        return vfio::set_msix(d_.handles.device.get(), event_fds);
    }

  private:
    VfioKind::Device d_;
    std::vector<Mapping> bars_;
};

}  // namespace

void VfioKind::add_options(CLI::App& app, Options& options) {
    app.add_option("--device", options.devices,
                   "pass a host PCI device through to the guest: vfio=DDDD:BB:DD.F (repeatable). "
                   "The device must be bound to vfio-pci, every other device of its IOMMU group "
                   "bound to vfio-pci or to no driver, and the device listed in the policy's "
                   "/vfio_devices. All of guest RAM is pinned for the device's DMA. The guest "
                   "gets MSI-X interrupts only (no INTx or MSI) and no I/O BARs; the device is "
                   "reset before the guest starts and when the sandbox ends")
        ->type_name("vfio=PCI-ADDRESS");
}

Result<> VfioKind::apply(const Options& options, Spec& spec) {
    spec.devices.clear();
    for (const std::string& text : options.devices) {
        if (!text.starts_with(kVfioPrefix))
            return fail("--device {}: expected vfio=DDDD:BB:DD.F (a host PCI device for VFIO)",
                        text);
        auto address = parse_pci_address(std::string_view(text).substr(kVfioPrefix.size()));
        if (!address) return std::unexpected(std::move(address).error().context("--device"));
        spec.devices.push_back(*address);
    }
    return {};
}

Result<> VfioKind::validate(const Spec& spec) {
    std::set<PciAddress> seen;
    for (const PciAddress& a : spec.devices)
        if (!seen.insert(a).second) return fail("--device vfio={}: given twice", a.str());
    return {};
}

Result<std::optional<VfioKind::Handed>> VfioKind::open(const Spec& spec, OpenContext& ctx) {
    if (spec.devices.empty()) return std::nullopt;
    Handed handed;
    for (const PciAddress& a : spec.devices) {
        const std::string name = a.str();
        const auto& allowed = ctx.policy.vfio_devices;
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
            return fail(
                "PCI device {}: not on the policy's /vfio_devices allowlist (a sandbox "
                "takes only the host devices its policy names)",
                name);
        const vfio::HostDevice host = STOCKADE_TRY(vfio::inspect_host_device(a));
        STOCKADE_TRY_VOID(vfio::check_assignable(host));
        Device d{a, STOCKADE_TRY(vfio::open_passthrough(name, host.iommu_group)), {}};
        auto info = vfio::device_info(d.handles.device.get());
        if (!info) return std::unexpected(std::move(info).error().context("PCI device " + name));
        d.info = std::move(*info);
        handed.push_back(std::move(d));
    }
    return handed;
}

std::vector<int> VfioKind::fds(const Handed& handed) {
    std::vector<int> out;
    for (const Device& d : handed)
        for (const UniqueFd* fd : {&d.handles.container, &d.handles.group, &d.handles.device})
            out.push_back(fd->get());
    return out;
}

Result<std::vector<BuiltDevice>> VfioKind::build(Handed handed, BuildContext&) {
    std::vector<BuiltDevice> out;
    for (Device& d : handed) {
        BuiltDevice b;
        b.passthrough = std::make_unique<VfioSource>(std::move(d));
        out.push_back(std::move(b));
    }
    return out;
}

void VfioKind::add_seccomp_rules(DeviceThreadProfiles profiles) {
    // vCPU threads serve the function's configuration space (port I/O) and its trapped BAR
    // pages (MMIO): reads and writes on the device descriptor, MSI-X on and off, and the
    // memory slots of BARs the guest moves.
    profiles.vcpu.allow({SYS_pread64, SYS_pwrite64})
        .allow_ioctl(
            {STOCKADE_IOCTL(VFIO_DEVICE_SET_IRQS), STOCKADE_IOCTL(KVM_SET_USER_MEMORY_REGION)});
}

}  // namespace stockade
