#pragma once
// `stockade net up|down|show`: the runner's main dispatches `stockade net ARGS...` here.
#include <iosfwd>
#include <span>
#include <string>

namespace stockade::net {

// args: what follows "stockade net", e.g. {"up", "id=sb0,bridge=br0,vlan=10"}.
// Returns 0 on success (and for --help), 125 with the error on stderr otherwise
// (docker's convention for "the tool itself failed").
int net_cli(std::span<const std::string> args);
int net_cli(std::span<const std::string> args, std::ostream& out, std::ostream& err);

}  // namespace stockade::net
