#pragma once
// A thread that first runs `setup` (its own seccomp filter, as each sandbox thread loads one)
// and runs `body` only if setup succeeded. start_thread returns once setup has finished: the
// running thread, or setup's error with the thread already joined.
#include <functional>
#include <future>
#include <thread>
#include <utility>

#include "base/error.hpp"
#include "base/mapping.hpp"

namespace stockade {

[[nodiscard]] inline Result<std::thread> start_thread(std::function<Result<>()> setup,
                                                      std::function<void()> body) {
    std::promise<Result<>> started;
    auto ready = started.get_future();
    std::thread t(
        [setup = std::move(setup), body = std::move(body), started = std::move(started)]() mutable {
            no_huge_pages_on_this_threads_stack();
            Result<> r = setup ? setup() : Result<>{};
            const bool ok = r.has_value();
            started.set_value(std::move(r));
            if (ok) body();
        });
    auto r = ready.get();
    if (!r) {
        t.join();
        return std::unexpected(std::move(r).error());
    }
    return t;
}

}  // namespace stockade
