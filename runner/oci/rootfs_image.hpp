#pragma once
// An OCI bundle's root directory as the ext4 image the sandbox boots with (--rootfs): built
// once per content by stockade-mkimage (reproducible: same files, same bytes) into a cache,
// then each container gets its own copy (a reflink where the file system has them, else a
// sparse copy), so that what one container writes no other sees and the cache stays clean.
#include <cstdint>
#include <optional>
#include <string>

#include "base/error.hpp"
#include "base/sha256.hpp"

namespace stockade::oci {

// Where images live: $STOCKADE_OCI_DIR, else /var/lib/stockade/oci; images/ is the cache
// (DIGEST-SIZE.ext4), containers/ID.ext4 each container's copy until `delete`.
[[nodiscard]] std::string oci_data_dir();
[[nodiscard]] std::string container_image_path(std::string_view id);

// The digest of a directory tree's content: every entry's relative path, type, mode, owner,
// size, device number, link target and file bytes, in sorted order; and the bytes its
// regular files hold (what sizes its image), from the same walk. Sockets are refused.
struct TreeContent {
    Sha256 digest{};
    std::uint64_t bytes = 0;
};
[[nodiscard]] Result<TreeContent> tree_digest(const std::string& dir);

struct ImageResult {
    std::string path;     // the container's own image
    bool cached = false;  // the content's image was in the cache already
    double build_seconds = 0, copy_seconds = 0;
};

// The container `id`'s image of `root_dir`: the cache's (built first when missing, with
// `mkimage`) copied to container_image_path(id). `size_mib`: the image's size (default: the
// content's bytes times 1.5 plus 256 MiB, sparse).
[[nodiscard]] Result<ImageResult> container_image(const std::string& root_dir, std::string_view id,
                                                  std::optional<std::uint64_t> size_mib,
                                                  const std::string& mkimage);

// stockade-mkimage beside this executable (an installed stockade), else the build tree's.
[[nodiscard]] std::string mkimage_path();

}  // namespace stockade::oci
