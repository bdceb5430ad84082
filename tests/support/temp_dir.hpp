#pragma once
// A fresh directory under the system's temporary directory, removed with everything in it
// when the TempDir goes. `path` is empty when it could not be made (tests assert on that).
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace stockade::test {

class TempDir {
  public:
    explicit TempDir(std::string_view prefix = "stockade-test") {
        std::string tmpl =
            (std::filesystem::temp_directory_path() / (std::string(prefix) + ".XXXXXX")).string();
        if (::mkdtemp(tmpl.data())) path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::filesystem::path path;
};

}  // namespace stockade::test
