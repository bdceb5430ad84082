#pragma once
// The device registry: every kind of device stockade offers, in PCI slot order. Everything
// that depends on which devices exist is derived from this one list: `stockade run`'s
// options, validation, what the supervisor opens and claims, the descriptors the sandbox
// keeps, whether the guest has a PCI bus, the devices built, the seccomp additions and the
// guest drivers they need. A new device is its own files plus one line here.
#include <tuple>
#include <type_traits>
#include <utility>

#include "runner/registry/blk.hpp"
#include "runner/registry/device_kind.hpp"
#include "runner/registry/net.hpp"
#include "runner/registry/rng.hpp"
#include "runner/registry/vfio.hpp"
#include "runner/registry/vsock.hpp"

namespace stockade {

template <DeviceKind... Kinds>
struct KindList {
    using Options = std::tuple<typename Kinds::Options...>;
    using Specs = std::tuple<typename Kinds::Spec...>;
    using Handed = std::tuple<std::optional<typename Kinds::Handed>...>;
    using Hosts = std::tuple<std::optional<typename Kinds::Host>...>;

    // Calls f(std::type_identity<Kind>{}) for every kind, in order.
    template <class F>
    static void each(F&& f) {
        (f(std::type_identity<Kinds>{}), ...);
    }
    // Like each(), stopping at the first error.
    template <class F>
    static Result<> each_until_error(F&& f) {
        Result<> r;
        each([&](auto kind) {
            if (r) r = f(kind);
        });
        return r;
    }
};

using DeviceKinds = KindList<BlkKind, RngKind, NetKind, VsockKind, VfioKind>;

// Where kind K stands in DeviceKinds (the list's length when it is not there).
template <DeviceKind K, class... Ks>
constexpr std::size_t index_of(KindList<Ks...>*) {
    std::size_t i = 0;
    ((std::is_same_v<K, Ks> ? false : (++i, true)) && ...);
    return i;
}

// A kind's part of a tuple indexed like DeviceKinds.
template <DeviceKind K, class Tuple>
[[nodiscard]] constexpr auto& part_of(Tuple& t) {
    constexpr std::size_t index = index_of<K>(static_cast<DeviceKinds*>(nullptr));
    static_assert(index < std::tuple_size_v<std::remove_const_t<Tuple>>, "not a registered kind");
    return std::get<index>(t);
}

}  // namespace stockade
