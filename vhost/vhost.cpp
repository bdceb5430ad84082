#include "vhost/vhost.hpp"

#include <sys/ioctl.h>

#include "base/flex_buffer.hpp"

namespace stockade::vhost {

Result<VhostDevice> VhostDevice::adopt(UniqueFd fd, const char* what) {
    if (!fd) return fail("{}: no device fd", what);
    if (::ioctl(fd.get(), VHOST_SET_OWNER, nullptr) != 0)
        return fail_sys(fmt::format("VHOST_SET_OWNER on {}", what));
    return VhostDevice(std::move(fd), what);
}

Result<std::uint64_t> VhostDevice::features() const {
    std::uint64_t f = 0;
    if (::ioctl(fd_.get(), VHOST_GET_FEATURES, &f) != 0)
        return fail_sys(fmt::format("VHOST_GET_FEATURES on {}", what_));
    return f;
}

Result<> VhostDevice::set_features(std::uint64_t features) {
    if (::ioctl(fd_.get(), VHOST_SET_FEATURES, &features) != 0)
        return fail_sys(fmt::format("VHOST_SET_FEATURES {:#x} on {}", features, what_));
    return {};
}

Result<> VhostDevice::set_memory(const GuestMemory& memory) {
    const auto regions = memory.host_regions();
    FlexBuffer<vhost_memory, vhost_memory_region> table(regions.size());
    table->nregions = static_cast<std::uint32_t>(regions.size());
    for (std::size_t i = 0; i < regions.size(); ++i) {
        vhost_memory_region& r = table.entries()[i];
        r.guest_phys_addr = regions[i].guest_phys;
        r.memory_size = regions[i].size;
        r.userspace_addr = reinterpret_cast<std::uint64_t>(regions[i].host);
    }
    if (::ioctl(fd_.get(), VHOST_SET_MEM_TABLE, table.get()) != 0)
        return fail_sys(
            fmt::format("VHOST_SET_MEM_TABLE ({} regions) on {}", regions.size(), what_));
    return {};
}

Result<> VhostDevice::set_vring(const GuestMemory& memory, const VringSetup& v) {
    const std::uint64_t n = v.size;
    // The rings are checked against guest RAM like every other guest address; vhost
    // itself also translates through the memory table.
    auto desc = STOCKADE_TRY(memory.slice(v.desc, 16 * n));
    auto avail = STOCKADE_TRY(memory.slice(v.avail, 6 + 2 * n));
    auto used = STOCKADE_TRY(memory.slice(v.used, 6 + 8 * n));
    vhost_vring_state num{v.index, v.size};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_NUM, &num) != 0)
        return fail_sys(fmt::format("VHOST_SET_VRING_NUM {} on {}", v.index, what_));
    vhost_vring_state base{v.index, v.base};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_BASE, &base) != 0)
        return fail_sys(fmt::format("VHOST_SET_VRING_BASE {} on {}", v.index, what_));
    vhost_vring_addr addr{};
    addr.index = v.index;
    addr.desc_user_addr = reinterpret_cast<std::uint64_t>(desc.data());
    addr.avail_user_addr = reinterpret_cast<std::uint64_t>(avail.data());
    addr.used_user_addr = reinterpret_cast<std::uint64_t>(used.data());
    if (::ioctl(fd_.get(), VHOST_SET_VRING_ADDR, &addr) != 0)
        return fail_sys(fmt::format("VHOST_SET_VRING_ADDR {} on {}", v.index, what_));
    vhost_vring_file kick{v.index, v.kick_fd};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_KICK, &kick) != 0)
        return fail_sys(fmt::format("VHOST_SET_VRING_KICK {} on {}", v.index, what_));
    vhost_vring_file call{v.index, v.call_fd};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_CALL, &call) != 0)
        return fail_sys(fmt::format("VHOST_SET_VRING_CALL {} on {}", v.index, what_));
    return {};
}

Result<std::uint16_t> VhostDevice::stop_vring(std::uint32_t index) {
    vhost_vring_file off{index, -1};
    (void)::ioctl(fd_.get(), VHOST_SET_VRING_KICK, &off);
    (void)::ioctl(fd_.get(), VHOST_SET_VRING_CALL, &off);
    vhost_vring_state base{index, 0};
    if (::ioctl(fd_.get(), VHOST_GET_VRING_BASE, &base) != 0)
        return fail_sys(fmt::format("VHOST_GET_VRING_BASE {} on {}", index, what_));
    return static_cast<std::uint16_t>(base.num);
}

Result<std::uint16_t> VhostDevice::vring_base(std::uint32_t index) const {
    vhost_vring_state base{index, 0};
    if (::ioctl(fd_.get(), VHOST_GET_VRING_BASE, &base) != 0)
        return fail_sys(fmt::format("VHOST_GET_VRING_BASE {} on {}", index, what_));
    return static_cast<std::uint16_t>(base.num);
}

Result<> VhostDevice::net_set_backend(std::uint32_t index, int tap_fd) {
    vhost_vring_file backend{index, tap_fd};
    if (::ioctl(fd_.get(), VHOST_NET_SET_BACKEND, &backend) != 0)
        return fail_sys(
            fmt::format("VHOST_NET_SET_BACKEND {} (fd {}) on {}", index, tap_fd, what_));
    return {};
}

Result<> VhostDevice::vsock_set_running(bool running) {
    int on = running ? 1 : 0;
    if (::ioctl(fd_.get(), VHOST_VSOCK_SET_RUNNING, &on) != 0)
        return fail_sys(fmt::format("VHOST_VSOCK_SET_RUNNING {} on {}", on, what_));
    return {};
}

Result<> vsock_set_guest_cid(int fd, std::uint64_t cid) {
    if (::ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, &cid) != 0)
        return fail_sys(fmt::format("VHOST_VSOCK_SET_GUEST_CID {}", cid));
    return {};
}

}  // namespace stockade::vhost
