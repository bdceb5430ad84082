#pragma once
// UndoStack: what a multi-step host change has done so far, undone newest first.
//
// up() pushes one entry per thing it creates; when a later step fails the stack is
// unwound, and when up() succeeds the same entries become the state file that down()
// unwinds. Undo keeps going past an entry that fails (a half-removed setup is worse
// than one that lists what it could not remove) and hands back the failures.
#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "base/error.hpp"

namespace stockade::net {

template <typename T>
class UndoStack {
  public:
    struct Failure {
        T item;
        Error error;
    };

    UndoStack() = default;
    explicit UndoStack(std::vector<T> items) : items_(std::move(items)) {}

    void push(T item) { items_.push_back(std::move(item)); }
    [[nodiscard]] const std::vector<T>& items() const { return items_; }
    [[nodiscard]] std::vector<T>& items() { return items_; }
    [[nodiscard]] bool empty() const { return items_.empty(); }

    // Calls undo(item) newest first and empties the stack. Returns the items whose undo
    // failed, oldest first (the order they would be pushed again), with their errors.
    template <typename Undo>
    std::vector<Failure> unwind(Undo&& undo) {
        std::vector<Failure> failed;
        while (!items_.empty()) {
            T item = std::move(items_.back());
            items_.pop_back();
            Result<> r = std::invoke(undo, static_cast<const T&>(item));
            if (!r) failed.push_back(Failure{std::move(item), std::move(r).error()});
        }
        std::reverse(failed.begin(), failed.end());
        return failed;
    }

  private:
    std::vector<T> items_;
};

}  // namespace stockade::net
