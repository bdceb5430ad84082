#include "runner/pci/msix.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

namespace stockade::pci {

Result<Msix> Msix::create(kvm::MsiRouter& router, std::uint16_t vectors) {
    if (vectors == 0 || vectors > 2048) return fail("MSI-X: {} vectors is not 1..2048", vectors);
    Msix m(router);
    m.entries_.resize(vectors);
    m.attached_.assign(vectors, false);
    for (std::uint16_t i = 0; i < vectors; ++i) {
        int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) return fail_sys("eventfd for an MSI-X vector");
        m.events_.emplace_back(fd);
        m.gsis_.push_back(STOCKADE_TRY(router.allocate_msi()));
    }
    return m;
}

std::vector<std::uint8_t> Msix::capability(std::uint8_t table_bar, std::uint32_t table_offset,
                                           std::uint8_t pba_bar, std::uint32_t pba_offset) const {
    std::vector<std::uint8_t> body(10, 0);
    const std::uint16_t ctl = static_cast<std::uint16_t>(entries_.size() - 1);
    const std::uint32_t table = table_offset | table_bar, pba = pba_offset | pba_bar;
    std::memcpy(body.data(), &ctl, 2);
    std::memcpy(body.data() + 2, &table, 4);
    std::memcpy(body.data() + 6, &pba, 4);
    return body;
}

void Msix::set_control(std::uint16_t control) {
    const std::uint16_t old = control_;
    control_ = control & (kMsixEnable | kMsixFunctionMask);
    if (old != control_)
        for (std::size_t v = 0; v < entries_.size(); ++v)
            update(v);
}

// Brings the KVM side of `vector` in line with the guest's view of it.
void Msix::update(std::size_t v) {
    const MsixEntry& e = entries_[v];
    const bool deliver = (control_ & kMsixEnable) && !(control_ & kMsixFunctionMask) &&
                         !(e.control & kMsixVectorMasked) && e.address != 0;
    if (deliver) {
        if (auto r = router_->set_msi(gsis_[v], e.address, e.data); !r)
            warnings_.warn("MSI-X vector {}: {}", v, r.error().message);
        if (!attached_[v]) {
            if (auto r = router_->attach(gsis_[v], events_[v].get()); r)
                attached_[v] = true;
            else
                warnings_.warn("MSI-X vector {}: {}", v, r.error().message);
        }
    } else if (attached_[v]) {
        if (auto r = router_->detach(gsis_[v], events_[v].get()); !r)
            warnings_.warn("MSI-X vector {}: {}", v, r.error().message);
        attached_[v] = false;
    }
}

void Msix::table_read(std::uint64_t offset, std::span<std::uint8_t> out) const {
    std::fill(out.begin(), out.end(), 0);
    const std::uint64_t index = offset / 16, field = offset % 16;
    if (index >= entries_.size() || field + out.size() > 16) return;
    const MsixEntry& e = entries_[index];
    std::uint8_t raw[16];
    std::memcpy(raw, &e.address, 8);
    std::memcpy(raw + 8, &e.data, 4);
    std::memcpy(raw + 12, &e.control, 4);
    std::memcpy(out.data(), raw + field, out.size());
}

void Msix::table_write(std::uint64_t offset, std::span<const std::uint8_t> in) {
    const std::uint64_t index = offset / 16, field = offset % 16;
    // Only aligned dword and qword accesses are defined (PCI spec); others are dropped.
    if (index >= entries_.size() || (in.size() != 4 && in.size() != 8) || field % in.size() != 0)
        return;
    MsixEntry& e = entries_[index];
    std::uint8_t raw[16];
    std::memcpy(raw, &e.address, 8);
    std::memcpy(raw + 8, &e.data, 4);
    std::memcpy(raw + 12, &e.control, 4);
    std::memcpy(raw + field, in.data(), in.size());
    std::memcpy(&e.address, raw, 8);
    std::memcpy(&e.data, raw + 8, 4);
    std::memcpy(&e.control, raw + 12, 4);
    e.control &= kMsixVectorMasked;
    update(index);
}

void Msix::pba_read(std::uint64_t, std::span<std::uint8_t> out) const {
    // Pending interrupts wait in the vector's eventfd while it is masked; the PBA reads 0.
    std::fill(out.begin(), out.end(), 0);
}

MsixState Msix::state() const {
    MsixState s{control_, entries_, std::vector<bool>(entries_.size(), false)};
    for (std::size_t v = 0; v < entries_.size(); ++v) {
        if (attached_[v]) continue;  // KVM takes an attached vector's interrupts at once
        // A detached vector's interrupts wait in its eventfd's counter: read it, then put
        // one back (one or many, the guest gets one interrupt).
        std::uint64_t count = 0;
        if (::read(events_[v].get(), &count, sizeof count) == sizeof count && count > 0) {
            s.pending[v] = true;
            notify(static_cast<std::uint16_t>(v));
        }
    }
    return s;
}

Result<> Msix::restore(const MsixState& s) {
    if (s.entries.size() != entries_.size() || s.pending.size() != entries_.size())
        return fail("MSI-X: the saved state has {} vectors, the function {}", s.entries.size(),
                    entries_.size());
    control_ = s.control & (kMsixEnable | kMsixFunctionMask);
    for (std::size_t v = 0; v < entries_.size(); ++v) {
        entries_[v] = s.entries[v];
        entries_[v].control &= kMsixVectorMasked;
        update(v);
        if (s.pending[v]) notify(static_cast<std::uint16_t>(v));
    }
    return {};
}

int Msix::event_fd(std::uint16_t vector) const {
    return vector < events_.size() ? events_[vector].get() : -1;
}

void Msix::notify(std::uint16_t vector) const {
    if (vector >= events_.size()) return;
    std::uint64_t one = 1;
    (void)!::write(events_[vector].get(), &one, sizeof one);
}

void Msix::reset() {
    control_ = 0;
    for (std::size_t v = 0; v < entries_.size(); ++v) {
        entries_[v] = MsixEntry{};
        update(v);
        std::uint64_t drain;
        (void)!::read(events_[v].get(), &drain, sizeof drain);
    }
}

}  // namespace stockade::pci
