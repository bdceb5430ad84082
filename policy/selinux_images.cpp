#include "policy/selinux_images.hpp"

#include <fcntl.h>
#include <selinux/context.h>
#include <selinux/selinux.h>
#include <unistd.h>

#include <memory>

#include "base/log.hpp"

namespace stockade::policy {
namespace {

struct ContextFree {
    void operator()(char* c) const { ::freecon(c); }
};

Result<std::string> label_of(int fd, const std::string& path) {
    char* raw = nullptr;
    if (::fgetfilecon_raw(fd, &raw) < 0) return fail_sys(fmt::format("the label of {}", path));
    std::unique_ptr<char, ContextFree> owned(raw);
    return std::string(raw);
}

// The type field of a context ("user:role:type:level..."); empty when it has none.
std::string type_of(const std::string& context) {
    const auto a = context.find(':');
    const auto b = a == std::string::npos ? a : context.find(':', a + 1);
    const auto c = b == std::string::npos ? b : context.find(':', b + 1);
    if (c == std::string::npos) return {};
    return context.substr(b + 1, c - b - 1);
}

// The categories of a context's level ("...:s0:c1,c2" -> "c1,c2"); empty when none.
std::string categories_of(const std::string& context) {
    const auto level = context.find(":s");
    if (level == std::string::npos) return {};
    const auto cats = context.find(':', level + 1);
    return cats == std::string::npos ? std::string() : context.substr(cats + 1);
}

}  // namespace

Result<std::string> image_context(const std::string& sandbox_context, bool read_only,
                                  const std::string& image_type) {
    context_t c = ::context_new(sandbox_context.c_str());
    if (c == nullptr) return fail("'{}' is not an SELinux context", sandbox_context);
    std::unique_ptr<std::remove_pointer_t<context_t>, void (*)(context_t)> owned(c,
                                                                                ::context_free);
    std::string range = ::context_range_get(c) != nullptr ? ::context_range_get(c) : "s0";
    if (read_only) range = range.substr(0, range.find(':'));  // the sensitivity alone
    if (::context_role_set(c, "object_r") != 0 || ::context_type_set(c, image_type.c_str()) != 0 ||
        ::context_range_set(c, range.c_str()) != 0)
        return fail("making the image context of '{}'", sandbox_context);
    return std::string(::context_str(c));
}

ImageLabels& ImageLabels::operator=(ImageLabels&& o) noexcept {
    if (this != &o) {
        restore();
        saved_ = std::move(o.saved_);
    }
    return *this;
}

Result<ImageLabels> ImageLabels::apply(std::span<const ImageFile> images,
                                       const std::string& sandbox_context) {
    ImageLabels out;
    for (const ImageFile& image : images) {
        const std::string want = STOCKADE_TRY(image_context(sandbox_context, image.read_only));
        const std::string now = STOCKADE_TRY(label_of(image.fd, image.path));
        // The image type with categories: a running sandbox's read-write disk.
        if (type_of(now) == type_of(want) && !categories_of(now).empty() && now != want)
            return fail("disk {} is in use by another sandbox (its label is {})", image.path,
                        now);
        if (now == want) continue;  // already so (shared read-only, or the file's default)
        const int dup = ::fcntl(image.fd, F_DUPFD_CLOEXEC, 3);
        if (dup < 0) return fail_sys(fmt::format("keeping {} to restore its label", image.path));
        if (::fsetfilecon_raw(image.fd, want.c_str()) < 0) {
            ::close(dup);
            return fail_sys(fmt::format("labelling disk {} {}", image.path, want));
        }
        out.saved_.push_back({UniqueFd(dup), image.path, now});
    }
    return out;
}

void ImageLabels::restore() {
    for (Saved& s : saved_)
        if (::fsetfilecon_raw(s.fd.get(), s.original.c_str()) < 0)
            log::warn("restoring the label {} of {}: {}", s.original, s.path, std::strerror(errno));
    saved_.clear();
}

}  // namespace stockade::policy
