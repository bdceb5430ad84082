#include "runner/arch/x86/aml.hpp"

namespace stockade::aml {
namespace {

constexpr std::uint8_t kZeroOp = 0x00, kOneOp = 0x01, kNameOp = 0x08, kBytePrefix = 0x0a,
                       kWordPrefix = 0x0b, kDWordPrefix = 0x0c, kStringPrefix = 0x0d,
                       kQWordPrefix = 0x0e, kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12,
                       kExtOpPrefix = 0x5b, kDeviceOp = 0x82, kRootChar = 0x5c, kMethodOp = 0x14,
                       kNotifyOp = 0x86, kDualNamePrefix = 0x2e, kMultiNamePrefix = 0x2f;

void append(Bytes& out, const Bytes& b) {
    out.insert(out.end(), b.begin(), b.end());
}

Bytes with_pkg(std::initializer_list<std::uint8_t> op, const Bytes& body) {
    Bytes out(op);
    append(out, pkg_length(body.size()));
    append(out, body);
    return out;
}

}  // namespace

Bytes pkg_length(std::size_t payload) {
    // One byte holds up to 63 (including itself); longer lengths take 2..4 bytes, the
    // first carrying the byte count in bits 7:6 and the low nibble of the length.
    if (payload + 1 < 64) return {static_cast<std::uint8_t>(payload + 1)};
    for (std::size_t n = 2; n <= 4; ++n) {
        std::size_t total = payload + n;
        if (total < (std::size_t{1} << (4 + 8 * (n - 1)))) {
            Bytes out{static_cast<std::uint8_t>(((n - 1) << 6) | (total & 0xf))};
            for (std::size_t i = 1; i < n; ++i)
                out.push_back(static_cast<std::uint8_t>(total >> (4 + 8 * (i - 1))));
            return out;
        }
    }
    return {};  // > 256 MiB: never produced by stockade
}

Bytes name_seg(std::string_view n) {
    Bytes out(4, '_');
    for (std::size_t i = 0; i < n.size() && i < 4; ++i)
        out[i] = static_cast<std::uint8_t>(n[i]);
    return out;
}

Bytes integer(std::uint64_t v) {
    if (v == 0) return {kZeroOp};
    if (v == 1) return {kOneOp};
    Bytes out;
    std::size_t width;
    if (v <= 0xff) {
        out.push_back(kBytePrefix);
        width = 1;
    } else if (v <= 0xffff) {
        out.push_back(kWordPrefix);
        width = 2;
    } else if (v <= 0xffff'ffff) {
        out.push_back(kDWordPrefix);
        width = 4;
    } else {
        out.push_back(kQWordPrefix);
        width = 8;
    }
    for (std::size_t i = 0; i < width; ++i)
        out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return out;
}

Bytes string(std::string_view s) {
    Bytes out;
    out.reserve(s.size() + 2);
    out.push_back(kStringPrefix);
    for (char c : s)
        out.push_back(static_cast<std::uint8_t>(c));
    out.push_back(0);
    return out;
}

Bytes name(std::string_view n, const Bytes& object) {
    Bytes out{kNameOp};
    append(out, name_seg(n));
    append(out, object);
    return out;
}

Bytes package(const std::vector<Bytes>& elements) {
    Bytes body{static_cast<std::uint8_t>(elements.size())};
    for (const auto& e : elements)
        append(body, e);
    return with_pkg({kPackageOp}, body);
}

Bytes buffer(const Bytes& data) {
    Bytes body = integer(data.size());
    append(body, data);
    return with_pkg({kBufferOp}, body);
}

Bytes device(std::string_view n, const std::vector<Bytes>& body) {
    Bytes inner = name_seg(n);
    for (const auto& b : body)
        append(inner, b);
    return with_pkg({kExtOpPrefix, kDeviceOp}, inner);
}

Bytes scope(std::string_view path, const std::vector<Bytes>& body) {
    Bytes inner = name_path(path);
    for (const auto& b : body)
        append(inner, b);
    return with_pkg({kScopeOp}, inner);
}

Bytes name_path(std::string_view path) {
    if (path.empty() || path.front() != '\\') return {};  // absolute paths only
    Bytes out{kRootChar};
    std::vector<std::string_view> segs;
    for (std::string_view rest = path.substr(1); !rest.empty();) {
        const std::size_t dot = rest.find('.');
        segs.push_back(rest.substr(0, dot));
        rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
    }
    if (segs.size() == 2) {
        out.push_back(kDualNamePrefix);
    } else if (segs.size() > 2) {
        out.push_back(kMultiNamePrefix);
        out.push_back(static_cast<std::uint8_t>(segs.size()));
    } else if (segs.empty()) {
        out.push_back(0x00);  // NullName: the root itself
    }
    for (std::string_view seg : segs)
        append(out, name_seg(seg));
    return out;
}

Bytes method(std::string_view n, std::uint8_t args, const std::vector<Bytes>& body) {
    Bytes inner = name_seg(n);
    inner.push_back(static_cast<std::uint8_t>(args & 7));  // MethodFlags: ArgCount, not serialized
    for (const auto& b : body)
        append(inner, b);
    return with_pkg({kMethodOp}, inner);
}

Bytes notify(std::string_view path, std::uint64_t value) {
    Bytes out{kNotifyOp};
    append(out, name_path(path));
    append(out, integer(value));
    return out;
}

Bytes io_port(std::uint16_t base, std::uint8_t length) {
    // I/O Port Descriptor: decodes 16 bits, min == max == base, alignment 1.
    return {0x47,
            0x01,
            static_cast<std::uint8_t>(base),
            static_cast<std::uint8_t>(base >> 8),
            static_cast<std::uint8_t>(base),
            static_cast<std::uint8_t>(base >> 8),
            0x01,
            length};
}

Bytes irq(std::uint8_t line) {
    const std::uint16_t mask = static_cast<std::uint16_t>(1u << line);
    return {0x22, static_cast<std::uint8_t>(mask), static_cast<std::uint8_t>(mask >> 8)};
}

namespace {

// Word/DWord/QWord Address Space Descriptors (ACPI 6.4, 6.4.3.5): tag, length, resource
// type, general flags, type flags, then granularity, min, max, translation, length.
template <typename T>
Bytes address_space(std::uint8_t tag, std::uint8_t type, std::uint8_t type_flags, T min, T max) {
    constexpr std::uint8_t kProducerMinMaxFixed = 0x0c;
    const std::uint16_t body = 3 + 5 * sizeof(T);
    Bytes out{tag,
              static_cast<std::uint8_t>(body),
              static_cast<std::uint8_t>(body >> 8),
              type,
              kProducerMinMaxFixed,
              type_flags};
    auto put = [&](T v) {
        for (std::size_t i = 0; i < sizeof(T); ++i)
            out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    };
    put(0);
    put(min);
    put(max);
    put(0);
    put(static_cast<T>(max - min + 1));
    return out;
}

}  // namespace

Bytes word_bus_numbers(std::uint16_t min, std::uint16_t max) {
    return address_space<std::uint16_t>(0x88, 2, 0, min, max);
}
Bytes word_io(std::uint16_t min, std::uint16_t max) {
    return address_space<std::uint16_t>(0x88, 1, 0x03, min, max);  // entire range
}
Bytes dword_memory(std::uint32_t min, std::uint32_t max) {
    return address_space<std::uint32_t>(0x87, 0, 0x01, min, max);  // non-cacheable, RW
}
Bytes qword_memory(std::uint64_t min, std::uint64_t max, bool prefetchable) {
    return address_space<std::uint64_t>(0x8a, 0, prefetchable ? 0x07 : 0x01, min, max);
}

Bytes end_tag() {
    return {0x79, 0x00};
}

Bytes resource_template(const std::vector<Bytes>& descriptors) {
    Bytes data;
    for (const auto& d : descriptors)
        append(data, d);
    append(data, end_tag());
    return buffer(data);
}

}  // namespace stockade::aml
