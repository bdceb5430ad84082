#pragma once
// The memory loader of a lazy sealed restore (README.md, "Sealed snapshots"; the protocol is
// base/memory_loader.hpp): guest RAM is registered with a userfaultfd in the sandbox, and
// this, in stockade-seal, places each chunk of the sealed memory part there, authenticated
// and decrypted, when the guest (or a kernel worker for it, or the sandbox itself) first
// touches one of its pages; between faults it places the chunks nobody asked for yet, in
// order, and it is done once every chunk is in place. A zero chunk is mapped as the zero page.
#include <cstdint>
#include <span>

#include "base/error.hpp"
#include "base/memory_loader.hpp"
#include "snapshot/sealed_reader.hpp"

namespace stockade::snapshot {

// What stopped the load short of done without an error: the sandbox went away (its end of
// `peer` closed, or its memory is gone).
struct LoadOutcome {
    bool complete = false;
    memory_loader::Done done;
};

// Serves `uffd` (registered for missing pages over every region) from `reader` until every
// chunk is placed or the sandbox is gone; `peer` is only watched for its end. An error names
// the chunk that failed (the guest must not run on: the caller says so and stops).
[[nodiscard]] Result<LoadOutcome> serve_memory(SealedReader& reader, int uffd,
                                               std::span<const memory_loader::Region> regions,
                                               int peer);

}  // namespace stockade::snapshot
