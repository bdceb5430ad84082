#include "policy/artefacts.hpp"

namespace stockade::policy {

Result<> verify_artefacts(const DigestPolicy& pins, const SandboxArtefacts& a) {
    auto check = [](std::string_view what, const Artefact& art, const Sha256& pin) -> Result<> {
        if (art.bytes) {
            if (const Sha256 actual = sha256(*art.bytes); actual != pin)
                return fail(
                    "verifying {}: digest mismatch for {}: the policy pins sha256 {}, "
                    "the content read has {}",
                    what, art.path, to_hex(pin), to_hex(actual));
            return {};
        }
        if (auto r = verify_digest_fd(art.fd, art.path, pin); !r)
            return std::unexpected(std::move(r).error().context(fmt::format("verifying {}", what)));
        return {};
    };
    if (pins.kernel) STOCKADE_TRY_VOID(check("the kernel", a.kernel, *pins.kernel));
    if (pins.initrd) {
        if (!a.initrd)
            return fail(
                "verifying the initrd: the policy pins one (/digests/initrd) but the "
                "sandbox has none");
        STOCKADE_TRY_VOID(check("the initrd", *a.initrd, *pins.initrd));
    }
    for (const auto& [name, pin] : pins.disks) {
        auto it = a.disks.find(name);
        if (it == a.disks.end())
            return fail(
                "verifying disk \"{}\": the policy pins it (/digests/disks/{}) but the "
                "sandbox has no disk of that name",
                name, name);
        STOCKADE_TRY_VOID(check(fmt::format("disk \"{}\"", name), it->second, pin));
    }
    return {};
}

}  // namespace stockade::policy
