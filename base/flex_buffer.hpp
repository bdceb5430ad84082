#pragma once
// A kernel structure that ends in a flexible array (kvm_cpuid2, kvm_msrs, kvm_msr_list,
// kvm_irq_routing, vhost_memory): the header and `count` entries in one zeroed allocation,
// laid out as the ioctl reads it. The entries start right after the header, where each of
// those structures puts its array (base/uapi.hpp checks it). The count field has a name of
// its own in each structure, so the caller sets it.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <span>

namespace stockade {

template <typename Header, typename Entry>
class FlexBuffer {
    static_assert(alignof(Header) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__ &&
                  alignof(Entry) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    static_assert(sizeof(Header) % alignof(Entry) == 0, "entries follow the header aligned");

  public:
    // `count` zeroed entries.
    explicit FlexBuffer(std::size_t count)
        : count_(count),
          bytes_(std::make_unique<std::byte[]>(sizeof(Header) + count * sizeof(Entry))) {}
    // A copy of `entries`.
    explicit FlexBuffer(std::span<const Entry> entries) : FlexBuffer(entries.size()) {
        std::copy(entries.begin(), entries.end(), this->entries().begin());
    }

    // What the ioctl takes.
    [[nodiscard]] Header* get() { return reinterpret_cast<Header*>(bytes_.get()); }
    [[nodiscard]] const Header* get() const {
        return reinterpret_cast<const Header*>(bytes_.get());
    }
    Header* operator->() { return get(); }
    const Header* operator->() const { return get(); }

    // All `count` entries (the kernel may have filled in fewer: its count field says).
    [[nodiscard]] std::span<Entry> entries() {
        return {reinterpret_cast<Entry*>(bytes_.get() + sizeof(Header)), count_};
    }
    [[nodiscard]] std::span<const Entry> entries() const {
        return {reinterpret_cast<const Entry*>(bytes_.get() + sizeof(Header)), count_};
    }

  private:
    std::size_t count_;
    std::unique_ptr<std::byte[]> bytes_;
};

}  // namespace stockade
