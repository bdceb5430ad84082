#pragma once
// `stockade snapshot create|restore|rollback|verify` (runner/supervisor/snapshot_files.hpp is
// the directory's format). The CLI opens the snapshot's files itself and hands descriptors to
// the sandbox (which opens no path); a restore is a `run` of the snapshot's own arguments that
// resumes from the snapshot instead of booting. Each returns the process exit status: 0, 1
// (refused: bad input, an unknown sandbox, a snapshot that does not verify), 125 (failed), or
// for a restore in the foreground its workload's.
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "runner/supervisor/sandbox_spec.hpp"

namespace stockade::cli {

[[nodiscard]] int snapshot_cli(std::span<const std::string> args);

// `stockade create`'s arguments when they ask for a restore (`--restore DIR` or
// `--restore=DIR` among the options, before any "--"): the `snapshot` arguments that do it
// ("restore", "--paused", DIR, the other options); nullopt for a create that boots. Without a
// directory, DIR is left out and restore's parser says it is required.
[[nodiscard]] std::optional<std::vector<std::string>> create_restore_args(
    const std::vector<std::string>& args);

// What `snapshot restore DIR --id ID` runs: the snapshot's manifest read, its disk images
// free, its run arguments parsed (from its working directory, which becomes this process's).
// Nothing is changed yet.
// `seal_key`: a sealed snapshot's key file.
[[nodiscard]] Result<SandboxSpec> snapshot_restore_spec(const std::string& dir,
                                                        const std::string& id, bool verify_memory,
                                                        const std::string& seal_key = {});

}  // namespace stockade::cli
