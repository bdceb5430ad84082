#pragma once
// sVirt for disk images: for the run, each image a sandbox is given carries the module's
// image type (stockade_image_t) with the sandbox's own categories when it may write it (no
// other sandbox's domain may then read or write it, even through a descriptor), or with none
// when it is read-only (every sandbox may share it, as libvirt does with read-only disks);
// afterwards it gets its own label back. Labels are set and read on the descriptors the
// supervisor opened (fsetfilecon), never by path, so the file labelled is the file used.
//
// An image that a running sandbox has read-write (the image type with categories a live
// sandbox holds, asked through `held`) is refused. One left so by a supervisor that was
// killed (categories nobody holds) is taken, and gets back what a new file in its directory
// would get. One already labelled as wanted (the image type without categories: the default
// of /var/lib/stockade/images, or another sandbox's shared read-only disk) is used as it is
// and not restored. Without a count of users kept with the file (libvirt keeps one in
// extended attributes), a read-write run of an image another sandbox shares read-only takes
// it from that sandbox until it ends.
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::policy {

struct ImageFile {
    int fd = -1;
    bool read_only = false;
    std::string path;  // for messages
};

// The image context for a sandbox context: its user, object_r, `image_type` and its level,
// without the categories for a read-only image ("system_u:object_r:stockade_image_t:s0").
[[nodiscard]] Result<std::string> image_context(const std::string& sandbox_context, bool read_only,
                                                const std::string& image_type = "stockade_image_t");

class ImageLabels {
  public:
    ImageLabels() = default;
    ImageLabels(ImageLabels&&) noexcept = default;
    ImageLabels& operator=(ImageLabels&&) noexcept;
    ~ImageLabels() { restore(); }

    // Labels every image; on a failure what was labelled is restored and nothing is kept.
    // `held` says whether a live sandbox holds the categories "cLOW,cHIGH"
    // (McsReservation::held).
    using HeldCategories = std::function<bool(std::string_view categories)>;
    [[nodiscard]] static Result<ImageLabels> apply(std::span<const ImageFile> images,
                                                   const std::string& sandbox_context,
                                                   const HeldCategories& held);
    // Each image its own label again (logged when one cannot be restored). Idempotent.
    void restore();
    // The images labelled, with the label each gets back.
    [[nodiscard]] std::size_t size() const { return saved_.size(); }

  private:
    struct Saved {
        UniqueFd fd;  // a duplicate: the sandbox took the original
        std::string path, original;
    };
    std::vector<Saved> saved_;
};

// The label of snapshot directories (selinux/README.md): files made in one inherit its type.
inline constexpr const char* kSnapshotContext = "system_u:object_r:stockade_snapshot_t:s0";

// While one lives, the files and directories this thread creates get `context`
// (setfscreatecon), where SELinux is enabled and the loaded policy knows the context (the
// module is installed); elsewhere it changes nothing. Thread-local, as the kernel's
// creation context is.
class CreationLabel {
  public:
    explicit CreationLabel(const char* context);
    ~CreationLabel();
    CreationLabel(const CreationLabel&) = delete;
    CreationLabel& operator=(const CreationLabel&) = delete;
    // Whether creations are labelled (false: SELinux off or the context unknown).
    [[nodiscard]] bool active() const { return active_; }

  private:
    bool active_ = false;
};

}  // namespace stockade::policy
