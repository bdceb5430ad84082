#pragma once
// Lookups in the small constant tables that say what each value of an enum is called (and
// what else goes with it), so that one row holds all there is to know about a value and
// both directions (value -> text, text -> value) read the same row.
#include <algorithm>
#include <cstddef>
#include <iterator>
#include <optional>
#include <string_view>

namespace stockade {

// The row of `table` whose `field` equals `key`; nullptr when no row does.
template <typename Row, std::size_t N, typename Field, typename Key>
[[nodiscard]] constexpr const Row* find_row(const Row (&table)[N], Field Row::*field,
                                            const Key& key) {
    const Row* it = std::ranges::find(table, key, field);
    return it != std::end(table) ? it : nullptr;
}

// The row of a table that gives an enum value nothing but its name.
template <typename Enum>
struct NamedValue {
    Enum value;
    std::string_view name;
};

// The name `table` gives `value`; `unknown` when it gives none.
template <typename Enum, std::size_t N>
[[nodiscard]] constexpr std::string_view name_of(const NamedValue<Enum> (&table)[N], Enum value,
                                                 std::string_view unknown = "?") {
    const auto* row = find_row(table, &NamedValue<Enum>::value, value);
    return row ? row->name : unknown;
}

// The value `table` calls `name`; nullopt when it calls none so.
template <typename Enum, std::size_t N>
[[nodiscard]] constexpr std::optional<Enum> value_named(const NamedValue<Enum> (&table)[N],
                                                        std::string_view name) {
    const auto* row = find_row(table, &NamedValue<Enum>::name, name);
    return row ? std::optional<Enum>(row->value) : std::nullopt;
}

}  // namespace stockade
