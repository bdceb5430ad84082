#pragma once
// A sealed snapshot restored lazily (README.md, "Sealed snapshots"): guest RAM starts as
// anonymous memory registered with a userfaultfd, which the memory loader (stockade-seal
// `load`, a process of its own beside the sandbox, base/memory_loader.hpp) serves: each
// chunk is authenticated and decrypted there on first touch, the rest in the background.
// OpenSSL's ciphers never enter the sandbox process.
//
// The sandbox keeps its own copy of the userfaultfd until the loader says every chunk is in
// place: a loader that fails or dies leaves whoever touches a missing page waiting, never
// reading zeros, and the watch thread then ends the sandbox process at once (exit status
// 125, the loader's error on stderr), before any of it runs on.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "base/memory_loader.hpp"
#include "base/unique_fd.hpp"

namespace stockade {

// Whether the sandbox process of a restore started by this process (with a user namespace or
// not) can make a userfaultfd that serves the kernel's own faults (KVM's and vhost's), which
// a lazy sealed restore needs: root without a user namespace (CAP_SYS_PTRACE where the
// userfaultfd is made), or anyone where vm.unprivileged_userfaultfd is 1; and the kernel has
// userfaultfd. Else a sealed restore is decrypted eagerly.
[[nodiscard]] bool lazy_sealed_restore_possible(bool user_namespace);

class LazyMemory {
  public:
    // Registers every region of `memory` with a new userfaultfd, sends the layout and the
    // descriptor over `loader`, and waits (at most `limit`) for the loader's "ready" or its
    // error. Called before anything reads or writes guest memory, and before the jail (the
    // userfaultfd must be made with the privilege that kernel faults need).
    [[nodiscard]] static Result<std::unique_ptr<LazyMemory>> attach(
        const GuestMemory& memory, UniqueFd loader,
        std::chrono::milliseconds limit = std::chrono::seconds(30));
    // The watch thread (after the privilege drop; it loads `filter` first): on "done" it
    // lets the userfaultfd go; on an error, or the loader's end without one, it writes the
    // reason to stderr and ends the process with 125. The destructor stops it first (a
    // sandbox that ends before the load is complete ends with its own status) and then lets
    // the loader go, before guest RAM is unmapped.
    [[nodiscard]] Result<> watch(std::function<Result<>()> filter);
    ~LazyMemory();
    LazyMemory(const LazyMemory&) = delete;
    LazyMemory& operator=(const LazyMemory&) = delete;

    // For --stats: nullopt until the load is complete.
    [[nodiscard]] std::optional<memory_loader::Done> completed() const;

  private:
    LazyMemory() = default;
    void run_watch(const std::function<Result<>()>& filter);
    UniqueFd uffd_, loader_;
    UniqueFd stop_;        // an eventfd: the destructor's word to the watch thread
    std::string pending_;  // what the loader said after "ready", not read yet
    std::atomic<bool> complete_{false};
    memory_loader::Done done_;
    std::thread watch_;
};

}  // namespace stockade
