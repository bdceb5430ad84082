#include "runner/vmm/sandbox_resources.hpp"

#include <malloc.h>

namespace stockade {

void BootPlan::release() {
    kernel_file.reset();
    initrd.reset();
    // Swapping with an empty vector gives its storage back (assigning {} would keep it).
    std::vector<std::uint8_t>().swap(job);
    kernel = {};
    // Hand the freed pages back to the kernel now: glibc keeps a freed heap top until it
    // outgrows a trim threshold that its own large allocations raised (8 MiB stayed
    // resident in both the supervisor and the sandbox process before this).
    ::malloc_trim(0);
}

std::vector<int> SandboxResources::fds() const {
    std::vector<int> out;
    if (kvm) out.push_back(kvm->fd());
    if (api_listener) out.push_back(api_listener.get());
    if (metrics_file) out.push_back(metrics_file.get());
    if (status_pipe) out.push_back(status_pipe.get());
    if (restore_state) out.push_back(restore_state.get());
    if (restore_memory) out.push_back(restore_memory.get());
    if (restore_loader) out.push_back(restore_loader.get());
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        if (const auto& handed = part_of<K>(devices))
            for (int fd : K::fds(*handed))
                if (fd >= 0) out.push_back(fd);
    });
    return out;
}

}  // namespace stockade
