#pragma once
// The device registry: every kind of device stockade offers, in PCI slot order. Everything
// that depends on which devices exist is derived from this one list: `stockade run`'s
// options, validation, what the supervisor opens and claims, the descriptors the sandbox
// keeps, whether the guest has a PCI bus, the devices built, the seccomp additions and the
// guest drivers they need. A new device is its own files plus one line here.
#include <tuple>
#include <utility>

#include "runner/registry/blk.hpp"
#include "runner/registry/device_kind.hpp"
#include "runner/registry/net.hpp"
#include "runner/registry/rng.hpp"
#include "runner/registry/vsock.hpp"

namespace stockade {

template <DeviceKind... Kinds>
struct KindList {
    using Options = std::tuple<typename Kinds::Options...>;
    using Specs = std::tuple<typename Kinds::Spec...>;
    using Handed = std::tuple<std::optional<typename Kinds::Handed>...>;
    using Hosts = std::tuple<std::optional<typename Kinds::Host>...>;

    // Calls f(Kind tag, I) for every kind, in order.
    template <class F>
    static void each(F&& f) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (f(std::type_identity<Kinds>{}, std::integral_constant<std::size_t, I>{}), ...);
        }(std::index_sequence_for<Kinds...>{});
    }
    // Like each(), stopping at the first error.
    template <class F>
    static Result<> each_until_error(F&& f) {
        Result<> r;
        each([&](auto kind, auto index) {
            if (r) r = f(kind, index);
        });
        return r;
    }
};

using DeviceKinds = KindList<BlkKind, RngKind, NetKind, VsockKind>;

// A kind's part of a tuple indexed like DeviceKinds.
template <DeviceKind K, class Tuple>
[[nodiscard]] constexpr auto& part_of(Tuple& t) {
    constexpr std::size_t index = []<class... Ks>(KindList<Ks...>*) {
        std::size_t i = 0, found = sizeof...(Ks);
        ((std::is_same_v<K, Ks> ? (found = i, ++i) : ++i), ...);
        return found;
    }(static_cast<DeviceKinds*>(nullptr));
    static_assert(index < std::tuple_size_v<std::remove_const_t<Tuple>>, "not a registered kind");
    return std::get<index>(t);
}

}  // namespace stockade
