#pragma once
// /dev/kvm: the system handle. Checks the API version and capabilities up front so a
// missing feature is reported by name before anything is created.
#include "base/uapi.hpp"

#include <span>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::kvm {

// CPUID entries as KVM exchanges them (KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2).
using CpuidEntries = std::vector<kvm_cpuid_entry2>;

class Kvm {
  public:
    // Opens /dev/kvm (or `path`) and checks KVM_GET_API_VERSION == 12.
    [[nodiscard]] static Result<Kvm> open(const char* path = "/dev/kvm");

    [[nodiscard]] int check_extension(int cap) const;
    // Fails with "KVM lacks <name> (KVM_CAP_...)" when the capability is absent.
    [[nodiscard]] Result<> require(int cap, std::string_view name) const;
    [[nodiscard]] Result<CpuidEntries> supported_cpuid() const;
    [[nodiscard]] Result<std::size_t> vcpu_mmap_size() const;
    [[nodiscard]] Result<std::vector<std::uint32_t>> msr_index_list() const;
    [[nodiscard]] int fd() const { return fd_.get(); }

  private:
    explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

// The capabilities the runner cannot work without, checked once at start.
[[nodiscard]] Result<> check_required_capabilities(const Kvm& kvm);

}  // namespace stockade::kvm
