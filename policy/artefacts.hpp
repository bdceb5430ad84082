#pragma once
// Startup step 2: the artefacts a sandbox boots from, checked against the digests the policy
// pins, on the descriptors the sandbox will use (opened once, before anything is created, so
// no file can be swapped between the check and its use), or on the very bytes it boots from
// once they are read (so nothing written to the file afterwards changes what boots).
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "base/error.hpp"
#include "policy/policy.hpp"

namespace stockade::policy {

struct Artefact {
    std::string path;  // for messages
    int fd = -1;
    // The file's content as the sandbox will use it, when already in memory: this is what
    // gets hashed then, not the file.
    std::optional<std::span<const std::uint8_t>> bytes = std::nullopt;
};

struct SandboxArtefacts {
    Artefact kernel;
    std::optional<Artefact> initrd;
    std::map<std::string, Artefact> disks;  // by the disk's name in the sandbox spec
};

// Every pinned artefact must be present and match; unpinned ones are not read. Errors name
// the artefact, the file and both digests, or what the policy pins that the sandbox lacks.
[[nodiscard]] Result<> verify_artefacts(const DigestPolicy& pins, const SandboxArtefacts& a);

}  // namespace stockade::policy
