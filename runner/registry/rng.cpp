#include "runner/registry/rng.hpp"

#include <sys/syscall.h>

#include <CLI/CLI.hpp>

#include "runner/virtio/rng.hpp"

namespace stockade {

void RngKind::add_options(CLI::App& app, Options& options) {
    app.add_flag("--rng", options.enabled, "add a virtio-rng device fed from the host's getrandom");
}

Result<std::vector<BuiltDevice>> RngKind::build(Handed, BuildContext&) {
    std::vector<BuiltDevice> out;
    out.push_back({std::make_unique<virtio::Rng>(), ""});
    return out;
}

void RngKind::add_seccomp_rules(DeviceThreadProfiles profiles) {
    profiles.event_loop.allow({SYS_getrandom});  // requests are served on the event loop
}

}  // namespace stockade
