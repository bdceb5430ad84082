#pragma once
// For code already in a test's child (test::run_in_child): forks once more, into new
// namespaces, and goes on only in that namespace child. The parent's side waits and exits
// with the namespace child's verdict (10 when the fork failed), so it never returns.
#include <unistd.h>

#include <cstdint>
#include <initializer_list>

#include "policy/namespaces.hpp"
#include "tests/support/child.hpp"

namespace stockade::policy {

// `namespaces` (with a user namespace, mapping only uid and gid `id`).
inline void continue_in_namespaces(std::initializer_list<Namespace> namespaces, std::uint32_t id) {
    NamespaceSpec spec;
    spec.namespaces = namespaces;
    spec.uid = spec.gid = id;
    auto forked = fork_into_namespaces(spec);
    if (!forked) ::_exit(10);
    if (!forked->in_child()) ::_exit(test::exit_code_of(forked->pid));
}

}  // namespace stockade::policy
