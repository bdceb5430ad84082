#pragma once
// The byte encoding of snapshot state (the snapshot's "state" part): little-endian integers,
// byte strings and sequences with a 32-bit length, fixed-size structures as their bytes.
// An unsealed snapshot is a file anyone with access may have changed, so reading is checked
// throughout: nothing is read past the end, no sequence is longer than its caller allows or
// than the bytes left could hold (so a length cannot make a large allocation), a structure's
// bytes must have exactly its size, and the whole input must be used.
//
// The reader's errors are sticky: after the first, every read yields zeros and nothing
// more is consumed, and finish() reports that first error with what was being read. A
// decoder reads field after field and checks once.
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/error.hpp"

namespace stockade {

class StateWriter {
  public:
    void u8(std::uint8_t v) { out_.push_back(v); }
    void boolean(bool v) { u8(v ? 1 : 0); }
    void u16(std::uint16_t v) { put(v); }
    void u32(std::uint32_t v) { put(v); }
    void u64(std::uint64_t v) { put(v); }
    // A sequence's element count (its elements follow).
    void count(std::size_t n) { u32(static_cast<std::uint32_t>(n)); }
    void bytes(std::span<const std::uint8_t> b) {
        count(b.size());
        out_.insert(out_.end(), b.begin(), b.end());
    }
    // A fixed-size structure (a KVM state structure) as its bytes.
    template <typename T>
    void raw(const T& v) {
        static_assert(std::is_trivially_copyable_v<T>);
        bytes(std::span(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));
    }

    [[nodiscard]] const std::vector<std::uint8_t>& data() const { return out_; }
    [[nodiscard]] std::vector<std::uint8_t> take() { return std::move(out_); }

  private:
    template <typename T>
    void put(T v) {
        static_assert(std::endian::native == std::endian::little);
        const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
        out_.insert(out_.end(), p, p + sizeof v);
    }
    std::vector<std::uint8_t> out_;
};

class StateReader {
  public:
    explicit StateReader(std::span<const std::uint8_t> in) : in_(in) {}

    // Each names the field it reads, for the error.
    std::uint8_t u8(std::string_view what);
    bool boolean(std::string_view what);  // 0 or 1, nothing else
    std::uint16_t u16(std::string_view what) { return get<std::uint16_t>(what); }
    std::uint32_t u32(std::string_view what) { return get<std::uint32_t>(what); }
    std::uint64_t u64(std::string_view what) { return get<std::uint64_t>(what); }
    // A sequence's element count: at most `max`, and no more than the bytes left could hold
    // at `min_element_bytes` each. 0 after an error.
    std::size_t count(std::string_view what, std::size_t max, std::size_t min_element_bytes);
    // A byte string of at most `max` bytes (empty after an error).
    std::span<const std::uint8_t> bytes(std::string_view what, std::size_t max);
    // A fixed-size structure: exactly sizeof(T) bytes.
    template <typename T>
    void raw(std::string_view what, T& out) {
        static_assert(std::is_trivially_copyable_v<T>);
        const auto b = bytes(what, sizeof(T));
        if (b.size() == sizeof(T)) {
            std::memcpy(&out, b.data(), sizeof(T));
        } else {
            out = T{};
            if (ok()) error(what, "{} bytes, not {}", b.size(), sizeof(T));
        }
    }
    // A value the caller found wrong (out of range, inconsistent): sticky like the others.
    template <typename... Args>
    void invalid(std::string_view what, fmt::format_string<Args...> f, Args&&... args) {
        error(what, f, std::forward<Args>(args)...);
    }

    [[nodiscard]] bool ok() const { return error_.empty(); }
    [[nodiscard]] std::size_t remaining() const { return ok() ? in_.size() - at_ : 0; }
    // The first error, or one for bytes left over; `what` names the whole.
    [[nodiscard]] Result<> finish(std::string_view what) const;

  private:
    template <typename T>
    T get(std::string_view what) {
        T v{};
        if (take(what, sizeof v)) std::memcpy(&v, in_.data() + at_ - sizeof v, sizeof v);
        return v;
    }
    bool take(std::string_view what, std::size_t n);
    template <typename... Args>
    void error(std::string_view what, fmt::format_string<Args...> f, Args&&... args) {
        if (ok())
            error_ = fmt::format("{} (at byte {}): {}", what, at_,
                                 fmt::format(f, std::forward<Args>(args)...));
    }

    std::span<const std::uint8_t> in_;
    std::size_t at_ = 0;
    std::string error_;
};

}  // namespace stockade
