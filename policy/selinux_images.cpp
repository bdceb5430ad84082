#include "policy/selinux_images.hpp"

#include <fcntl.h>
#include <selinux/context.h>
#include <selinux/selinux.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

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

// The fields of a context: user, role, type, then its level ("s0" or "s0:c1,c2") whole.
std::vector<std::string> fields_of(const std::string& context) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (out.size() < 3) {
        const auto colon = context.find(':', at);
        if (colon == std::string::npos) return {};
        out.push_back(context.substr(at, colon - at));
        at = colon + 1;
    }
    out.push_back(context.substr(at));
    return out;
}

std::string type_of(const std::string& context) {
    const auto f = fields_of(context);
    return f.empty() ? std::string() : f[2];
}

// The categories of a context's level ("...:s0:c1,c2" -> "c1,c2"); empty when none.
std::string categories_of(const std::string& context) {
    const auto f = fields_of(context);
    if (f.empty()) return {};
    const auto colon = f[3].find(':');
    return colon == std::string::npos ? std::string() : f[3].substr(colon + 1);
}

// The label a new file in the image's directory gets (the directory's user and type at its
// sensitivity, without categories): what the image had before a sandbox labelled it, unless
// someone relabelled it by hand. (The policy's file contexts, restorecon's answer, would
// pull libselinux's file-context backend and PCRE2 into the binary: a fifth more code,
// resident in every sandbox process through fault-around, for a case only a killed
// supervisor leaves.)
std::optional<std::string> default_label(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : path.substr(0, slash);
    char* raw = nullptr;
    if (::getfilecon_raw(dir.c_str(), &raw) < 0) return std::nullopt;
    std::unique_ptr<char, ContextFree> owned(raw);
    const auto f = fields_of(raw);
    if (f.empty()) return std::nullopt;
    return fmt::format("{}:object_r:{}:{}", f[0], f[2], f[3].substr(0, f[3].find(':')));
}

}  // namespace

Result<std::string> image_context(const std::string& sandbox_context, bool read_only,
                                  const std::string& image_type) {
    context_t c = ::context_new(sandbox_context.c_str());
    if (c == nullptr) return fail("'{}' is not an SELinux context", sandbox_context);
    std::unique_ptr<std::remove_pointer_t<context_t>, void (*)(context_t)> owned(c, ::context_free);
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
                                       const std::string& sandbox_context,
                                       const HeldCategories& held) {
    ImageLabels out;
    for (const ImageFile& image : images) {
        const std::string want = STOCKADE_TRY(image_context(sandbox_context, image.read_only));
        const std::string now = STOCKADE_TRY(label_of(image.fd, image.path));
        if (now == want) continue;  // already so (shared read-only, or the file's default)
        std::string original = now;
        // The image type with categories: a sandbox's read-write disk, or what a killed
        // supervisor left.
        if (const std::string categories = categories_of(now);
            type_of(now) == type_of(want) && !categories.empty()) {
            if (held && held(categories))
                return fail("disk {} is in use by another sandbox (its label is {})", image.path,
                            now);
            original = default_label(image.path).value_or(now);
        }
        const int dup = ::fcntl(image.fd, F_DUPFD_CLOEXEC, 3);
        if (dup < 0) return fail_sys(fmt::format("keeping {} to restore its label", image.path));
        if (::fsetfilecon_raw(image.fd, want.c_str()) < 0) {
            ::close(dup);
            return fail_sys(fmt::format("labelling disk {} {}", image.path, want));
        }
        out.saved_.push_back({UniqueFd(dup), image.path, std::move(original)});
    }
    return out;
}

void ImageLabels::restore() {
    for (Saved& s : saved_)
        if (::fsetfilecon_raw(s.fd.get(), s.original.c_str()) < 0)
            log::warn("restoring the label {} of {}: {}", s.original, s.path, std::strerror(errno));
    saved_.clear();
}

CreationLabel::CreationLabel(const char* context) {
    if (::is_selinux_enabled() <= 0 || ::security_check_context_raw(context) != 0) return;
    active_ = ::setfscreatecon_raw(context) == 0;
    if (!active_) log::warn("SELinux: labelling new files {}: {}", context, std::strerror(errno));
}

CreationLabel::~CreationLabel() {
    if (active_) (void)::setfscreatecon_raw(nullptr);
}

}  // namespace stockade::policy
