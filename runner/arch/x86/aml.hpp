#pragma once
// Just enough AML (ACPI Machine Language) to describe stockade's few platform devices in
// the DSDT: names, integers, strings, packages, buffers, devices, scopes, a method that
// notifies a device, and the small resource descriptors (I/O ports, IRQs, memory ranges, bus
// numbers).
#include <cstdint>
#include <string_view>
#include <vector>

namespace stockade::aml {

using Bytes = std::vector<std::uint8_t>;

// PkgLength: the encoded length includes its own bytes (ACPI 6.4, 20.2.4).
[[nodiscard]] Bytes pkg_length(std::size_t payload);
[[nodiscard]] Bytes name_seg(std::string_view name);  // exactly 4 characters, '_' padded
[[nodiscard]] Bytes integer(std::uint64_t v);
[[nodiscard]] Bytes string(std::string_view s);
[[nodiscard]] Bytes name(std::string_view n, const Bytes& object);
[[nodiscard]] Bytes package(const std::vector<Bytes>& elements);
[[nodiscard]] Bytes buffer(const Bytes& data);
[[nodiscard]] Bytes device(std::string_view n, const std::vector<Bytes>& body);
// Scope(path) { body }: `path` as name_path takes it.
[[nodiscard]] Bytes scope(std::string_view path, const std::vector<Bytes>& body);
// An absolute NamePath: "\\_SB_.VGEN" (four-character segments, '.' between them); nothing
// for a path that does not start at the root.
[[nodiscard]] Bytes name_path(std::string_view path);
// Method(NAME, args) { body }, not serialized; `args` is 0..7 (three bits of MethodFlags).
[[nodiscard]] Bytes method(std::string_view n, std::uint8_t args, const std::vector<Bytes>& body);
// Notify(path, value).
[[nodiscard]] Bytes notify(std::string_view path, std::uint64_t value);

// Resource template contents (ACPI 6.4, 6.4): end with end_tag() and wrap in buffer().
[[nodiscard]] Bytes io_port(std::uint16_t base, std::uint8_t length);
[[nodiscard]] Bytes irq(std::uint8_t line);  // edge-triggered, active high
// Bridge windows (ResourceProducer, MinFixed, MaxFixed): bus numbers, I/O, memory.
[[nodiscard]] Bytes word_bus_numbers(std::uint16_t min, std::uint16_t max);
[[nodiscard]] Bytes word_io(std::uint16_t min, std::uint16_t max);
[[nodiscard]] Bytes dword_memory(std::uint32_t min, std::uint32_t max);
[[nodiscard]] Bytes qword_memory(std::uint64_t min, std::uint64_t max, bool prefetchable);
[[nodiscard]] Bytes end_tag();
[[nodiscard]] Bytes resource_template(const std::vector<Bytes>& descriptors);

}  // namespace stockade::aml
