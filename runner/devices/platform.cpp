#include "runner/devices/platform.hpp"

#include <algorithm>
#include <cstring>

#include "runner/arch/x86/acpi.hpp"

namespace stockade {
namespace {
constexpr std::uint8_t kI8042ResetCommand = 0xfe;
constexpr std::uint64_t kI8042Command = 4;  // port 0x64 relative to 0x60
constexpr std::uint8_t kPvPanicPanicked = 1, kPvPanicCrashLoaded = 2;
}  // namespace

void PlatformPort::read(std::uint64_t, std::span<std::uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
}

void I8042::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
    if (offset == kI8042Command && !data.empty() && data[0] == kI8042ResetCommand)
        raise({PlatformEventKind::reset});
}

void AcpiSleep::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
    if (offset != 0 || data.empty()) return;
    if ((data[0] & x86::kSleepEnable) && x86::sleep_type_of(data[0]) == x86::kS5SleepType)
        raise({PlatformEventKind::poweroff});
}

void PvPanic::read(std::uint64_t, std::span<std::uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    if (!data.empty()) data[0] = kPvPanicPanicked | kPvPanicCrashLoaded;
}

void PvPanic::write(std::uint64_t, std::span<const std::uint8_t> data) {
    if (!data.empty() && (data[0] & kPvPanicPanicked)) raise({PlatformEventKind::panic});
}

void AgentPort::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
    if (offset != 0 || data.size() != 4) return;
    std::uint32_t v;
    std::memcpy(&v, data.data(), 4);
    if (guest_abi::is_agent_value(v)) raise({PlatformEventKind::agent, v});
}

}  // namespace stockade
