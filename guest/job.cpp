#include "guest/job.hpp"

#include "guest/cpio.hpp"

namespace stockade {

std::vector<std::uint8_t> build_job_archive(const Job& job) {
    cpio::Writer w;
    w.add_directory(guest_abi::kJobDir, 0700);
    const JobFiles files = job_files(job);
    for (const JobFile& f : kJobFiles)
        if (const auto& data = files.*f.member) w.add_file(f.path, *data, 0600);
    return w.finish();
}

}  // namespace stockade
