#pragma once
// Sealed snapshots through stockade-seal (snapshot/seal_main.cpp), the helper that alone maps
// OpenSSL's ciphers: stockade runs it with the descriptors of each step and reads back what
// it prints. Linked into stockade, EVP's tables would ride in every sandbox process (over a
// MiB beside guest RAM, docs/lab-notes.md); run as a helper, they cost nothing outside a
// seal or an open. The key file is named to the helper, which loads and checks it; the key
// never enters stockade or a sandbox.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade {

// The helper: PREFIX/lib/stockade/stockade-seal beside an installed PREFIX/bin/stockade, or
// the build tree's for a program of that build tree; else none (an error).
[[nodiscard]] Result<std::string> seal_helper_path();

// A --seal-key as the helper is given it: an absolute path (restores run from the snapshot's
// working directory) of a regular file (a FIFO would hang the helper); empty stays empty.
[[nodiscard]] Result<std::string> seal_key_path(const std::string& key);

// The key file is one the helper takes (owner-only, 32 bytes or 64 hex digits): checked
// before anything is paused or written.
[[nodiscard]] Result<> check_seal_key(const std::string& key);

// What a sealed part's record says (the helper's JSON line, kept as it came for the sealed
// manifest): its plaintext's length and SHA-256.
struct SealedRecord {
    std::string json;
    std::string name;
    std::uint64_t size = 0;
    std::string sha256;  // hex
};

// One part being sealed as it streams in: the sandbox writes into write_end(), the helper
// reads the other end and writes the sealed part into `file`. More than `limit` bytes and the
// helper stops, closing the pipe (the sandbox's writes fail).
class SealingPart {
  public:
    static Result<std::unique_ptr<SealingPart>> start(const std::string& key,
                                                      const std::string& snapshot_id,
                                                      const std::string& part, std::uint64_t limit,
                                                      int file);
    ~SealingPart();
    SealingPart(const SealingPart&) = delete;
    SealingPart& operator=(const SealingPart&) = delete;
    [[nodiscard]] int write_end() const { return write_.get(); }
    // Our copy of the write end closed (the sandbox's is closed): the helper's record once
    // it has sealed the rest, within `limit`.
    Result<SealedRecord> finish(std::chrono::seconds limit = std::chrono::seconds(60));
    // The create failed: the helper is stopped now, whatever the sandbox still holds.
    void cancel();

  private:
    SealingPart() = default;
    std::string part_;
    pid_t pid_ = -1;
    UniqueFd write_, record_, errors_;
};

// The sealed manifest written into `file`: the records as the helper printed them and the
// snapshot's JSON document.
[[nodiscard]] Result<> seal_manifest_file(const std::string& key, const std::string& snapshot_id,
                                          const std::vector<SealedRecord>& records,
                                          const std::string& document, int file);

// A sealed manifest opened (every byte authenticated): the document and the records.
struct OpenedSealedManifest {
    std::string snapshot_id;  // hex, from the sealed header
    std::string document;
    std::vector<SealedRecord> records;
};
[[nodiscard]] Result<OpenedSealedManifest> open_sealed_manifest(const std::string& key,
                                                                int manifest);

// Part `part` (the descriptor `file`) against the sealed manifest: with `out` >= 0, its
// plaintext written there as each chunk is authenticated (holes where chunks are zeros); else
// authenticated whole, or with `header_only` only its header checked (the snapshot, part,
// copy and length the manifest records), no chunk read. With `cgroup` (a cgroup v2
// directory) >= 0 the helper runs in that cgroup, so the pages it writes into a memory file
// `out` are charged there (a restored sandbox's leaf), not to the caller's.
[[nodiscard]] Result<> open_sealed_part(const std::string& key, const std::string& part, int file,
                                        int manifest, int out = -1, bool header_only = false,
                                        int cgroup = -1);

// The memory loader of a lazy sealed restore (stockade-seal `load`, base/memory_loader.hpp):
// started in `cgroup` with the sealed memory part and manifest, it loads the key, checks the
// part's header, decrypts the sealed state part `state` into `state_out` (every chunk
// authenticated) and says so; this returns then, or with its error. It becomes `uid`:`gid`
// and waits for the sandbox on the returned socket's other end, which the sandbox process
// takes. It ends on its own (done, failed, or its socket's peer gone) and is reaped by a
// thread of this process. (One helper for what took two or three: each costs a start of its own.)
[[nodiscard]] Result<UniqueFd> start_memory_loader(const std::string& key, const std::string& part,
                                                   int file, int manifest, int cgroup,
                                                   std::uint32_t uid, std::uint32_t gid, int state,
                                                   int state_out);

}  // namespace stockade
