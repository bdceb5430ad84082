#include "policy/json_reader.hpp"

#include <vector>

namespace stockade::policy::detail {
namespace {

// Tracks where the SAX-style parser callback is, to name a duplicate key by its path.
struct Frame {
    bool is_array = false;
    std::size_t index = 0;  // next element index (arrays)
    std::string key;        // current key (objects)
    std::set<std::string> keys;
};

}  // namespace

std::string child_path(std::string_view parent, std::string_view key) {
    std::string out(parent);
    out.push_back('/');
    for (char c : key) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out.push_back(c);
    }
    return out;
}

std::string child_path(std::string_view parent, std::size_t index) {
    return fmt::format("{}/{}", parent, index);
}

std::string describe(const json& v) {
    if (v.is_object()) return "an object";
    if (v.is_array()) return "an array";
    std::string text = v.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return text;
}

Result<json> parse_json_strict(std::string_view text) {
    std::vector<Frame> stack;
    std::string duplicate;  // path of the first duplicate key
    auto path_here = [&stack] {
        std::string p;
        for (const auto& f : stack)
            p = f.is_array ? child_path(p, f.index) : child_path(p, f.key);
        return p;
    };
    // Marks the completion of one value inside the enclosing array.
    auto value_done = [&stack] {
        if (!stack.empty() && stack.back().is_array) ++stack.back().index;
    };
    json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start: {
                // The path of the container is the frame stack as it stands.
                Frame f;
                f.is_array = event == json::parse_event_t::array_start;
                stack.push_back(std::move(f));
                break;
            }
            case json::parse_event_t::key: {
                auto& f = stack.back();
                f.key = parsed.get<std::string>();
                if (!f.keys.insert(f.key).second && duplicate.empty()) duplicate = path_here();
                break;
            }
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                stack.pop_back();
                value_done();
                break;
            case json::parse_event_t::value:
                value_done();
                break;
        }
        return true;
    };
    json doc;
    try {
        doc = json::parse(text.begin(), text.end(), cb);
    } catch (const json::exception& e) {
        // parse_error, and out_of_range for a number no double holds (1e400).
        return fail("policy: not valid JSON: {}", e.what());
    }
    if (!duplicate.empty()) return fail_at(duplicate, "duplicate key");
    return doc;
}

Result<ObjectReader> ObjectReader::open(const json& value, std::string path) {
    if (!value.is_object()) return fail_at(path, "expected an object, got {}", describe(value));
    return ObjectReader(value, std::move(path));
}

const json* ObjectReader::get(std::string_view key) {
    auto it = value_->find(key);
    known_.emplace(key);
    return it == value_->end() ? nullptr : &*it;
}

Result<> ObjectReader::finish() const {
    for (const auto& [key, v] : value_->items())
        if (!known_.contains(key)) return fail_at(child_path(path_, key), "unknown key");
    return {};
}

Result<std::string> read_string(const json& v, std::string_view path) {
    if (!v.is_string()) return fail_at(path, "expected a string, got {}", describe(v));
    return v.get<std::string>();
}

Result<bool> read_bool(const json& v, std::string_view path) {
    if (!v.is_boolean()) return fail_at(path, "expected true or false, got {}", describe(v));
    return v.get<bool>();
}

Result<std::uint64_t> read_uint(const json& v, std::string_view path, std::uint64_t min,
                                std::uint64_t max) {
    bool in_range = false;
    std::uint64_t value = 0;
    if (v.is_number_unsigned()) {
        value = v.get<std::uint64_t>();
        in_range = value >= min && value <= max;
    }
    if (!in_range)
        return fail_at(path, "expected an integer in {}..{}, got {}", min, max, describe(v));
    return value;
}

}  // namespace stockade::policy::detail
