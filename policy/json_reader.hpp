#pragma once
// Strict reading of a JSON document for the policy parser: every error names the JSON pointer
// path of the offending value (RFC 6901), objects refuse keys nobody asked for, and duplicate
// keys (which nlohmann would silently collapse to the last one) are refused at parse time.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/error.hpp"

namespace stockade::policy::detail {

using nlohmann::json;

// JSON text to a document; syntax errors and duplicate keys are errors.
[[nodiscard]] Result<json> parse_json_strict(std::string_view text);

// "/a/b" + key, with the pointer escapes (~0, ~1).
[[nodiscard]] std::string child_path(std::string_view parent, std::string_view key);
[[nodiscard]] std::string child_path(std::string_view parent, std::size_t index);

// A short rendering of a value for messages: 12.5, "abc", an object, an array.
[[nodiscard]] std::string describe(const json& v);

template <typename... Args>
[[nodiscard]] std::unexpected<Error> fail_at(std::string_view path, fmt::format_string<Args...> f,
                                             Args&&... args) {
    return std::unexpected(Error{fmt::format("policy: {}: {}", path.empty() ? "/" : path,
                                             fmt::format(f, std::forward<Args>(args)...)),
                                 0});
}

// Reads the members of one object; finish() fails on any member that was never asked for.
class ObjectReader {
  public:
    [[nodiscard]] static Result<ObjectReader> open(const json& value, std::string path);

    // The member, or nullptr when absent. Marks it as known.
    [[nodiscard]] const json* get(std::string_view key);
    [[nodiscard]] std::string path_of(std::string_view key) const { return child_path(path_, key); }
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] Result<> finish() const;

  private:
    ObjectReader(const json& value, std::string path) : value_(&value), path_(std::move(path)) {}
    const json* value_;
    std::string path_;
    std::set<std::string, std::less<>> known_;
};

// Typed readers; each names `path` and what was found on a mismatch.
[[nodiscard]] Result<std::string> read_string(const json& v, std::string_view path);
[[nodiscard]] Result<bool> read_bool(const json& v, std::string_view path);
[[nodiscard]] Result<std::uint64_t> read_uint(const json& v, std::string_view path,
                                              std::uint64_t min, std::uint64_t max);

}  // namespace stockade::policy::detail
