// The job archive as stockade-init reads it (guest/job.hpp): the files of a cpio archive
// parsed by parse_job_files. Whatever it accepts must survive a round trip through the
// writer unchanged.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "guest/cpio_reader.hpp"
#include "guest/job.hpp"

namespace {

stockade::JobFiles files_of(std::span<const std::uint8_t> archive) {
    stockade::JobFiles files;
    stockade::cpio::Reader reader(archive);
    while (auto e = reader.next()) {
        std::string_view path = e->path;
        while (path.starts_with('/'))
            path.remove_prefix(1);
        for (const stockade::JobFile& f : stockade::kJobFiles) {
            std::string_view want = f.path;
            while (want.starts_with('/'))
                want.remove_prefix(1);
            if (path == want) files.*f.member = std::string(e->data.begin(), e->data.end());
        }
    }
    return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto job = stockade::parse_job_files(files_of(std::span(data, size)));
    if (!job) return 0;
    const auto archive = stockade::build_job_archive(*job);
    auto again = stockade::parse_job_files(files_of(archive));
    if (!again || !(*again == *job)) __builtin_trap();
    return 0;
}
