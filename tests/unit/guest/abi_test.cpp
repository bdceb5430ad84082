// guest/abi.hpp's tables: the virtio drivers and modules stockade-init loads, and the texts
// the runner gives init failures.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>

#include "guest/abi.hpp"

namespace stockade::guest_abi {
namespace {

TEST(GuestAbi, EveryModuleStockadeInitLoadsIsInTheImage) {
    // guest/CMakeLists.txt's STOCKADE_GUEST_MODULES, handed over by tests/unit/guest.
    std::set<std::string> image;
    std::istringstream list(STOCKADE_GUEST_MODULES);
    for (std::string m; list >> m;)
        image.insert(m);
    ASSERT_FALSE(image.empty());
    for (std::string_view m : kGuestModules)
        EXPECT_TRUE(image.contains(std::string(m)))
            << "stockade-init loads " << m << ", which STOCKADE_GUEST_MODULES does not carry";
    for (const VirtioDriver& d : kVirtioDrivers)
        EXPECT_NE(std::find(kGuestModules.begin(), kGuestModules.end(), d.module),
                  kGuestModules.end())
            << d.module << " is missing from kGuestModules";
}

TEST(GuestAbi, VirtioDriversByDeviceId) {
    // Device ids of virtio 1.x section 5.
    EXPECT_EQ(virtio_driver_module(1), "virtio_net");
    EXPECT_EQ(virtio_driver_module(2), "virtio_blk");
    EXPECT_EQ(virtio_driver_module(4), "virtio_rng");
    EXPECT_EQ(virtio_driver_module(19), "vmw_vsock_virtio_transport");
    EXPECT_EQ(virtio_driver_module(0), "");
    EXPECT_EQ(virtio_driver_module(3), "") << "console: no driver";
    EXPECT_EQ(virtio_driver_module(0x10013), "") << "no truncation to 16 bits";
    std::set<std::uint16_t> ids;
    for (const VirtioDriver& d : kVirtioDrivers)
        EXPECT_TRUE(ids.insert(d.device_id).second) << "device id " << d.device_id << " twice";
    static_assert(kVirtioPciVendor == 0x1af4);
}

TEST(GuestAbi, InitFailureTexts) {
    EXPECT_EQ(init_failure_text(InitFailure::bad_job), "the job archive is missing or malformed");
    EXPECT_EQ(init_failure_text(InitFailure::mount), "a mount failed");
    EXPECT_EQ(init_failure_text(InitFailure::console), "the console could not be configured");
    EXPECT_EQ(init_failure_text(InitFailure::fork), "the workload process could not be created");
    EXPECT_EQ(init_failure_text(InitFailure::rootfs), "the root disk could not be mounted");
    EXPECT_EQ(init_failure_text(InitFailure::network),
              "the network interface could not be configured");
    // A code from a newer or broken guest: the caller says "failure code N".
    EXPECT_TRUE(init_failure_text(static_cast<InitFailure>(0)).empty());
    EXPECT_TRUE(init_failure_text(static_cast<InitFailure>(7)).empty());
    EXPECT_TRUE(init_failure_text(static_cast<InitFailure>(255)).empty());
    static_assert(init_failure_text(InitFailure::mount) == "a mount failed");
}

}  // namespace
}  // namespace stockade::guest_abi
