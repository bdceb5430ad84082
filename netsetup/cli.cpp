#include "netsetup/cli.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <vector>

#include "netsetup/network.hpp"
#include "netsetup/spec.hpp"

namespace stockade::net {
namespace {

constexpr int kExitFailure = 125;

constexpr const char* kSpecHelp =
    R"(SPEC is a comma-separated list of key=value (the same as `stockade run --net SPEC`):
  id=ID          sandbox id (required here): names the record /run/stockade/net/ID.json
                 and derives the defaults below; [A-Za-z0-9_.-], up to 64 bytes
  tap=NAME       tap interface (default stk-ID, or stk-<hash> when ID is long)
  mac=MAC        the sandbox's MAC, unicast (default 02:xx:xx:xx:xx:xx from SHA-256 of ID)
  bridge=NAME    attach the tap to this bridge; created with VLAN filtering when absent,
                 reused when it exists (and has VLAN filtering on)
  vlan=VID       access VLAN of the tap's port: PVID, untagged (default 1 with a bridge)
  trunk=VIDS     tagged VLANs of the tap's port: 10+20+100-110
  uplink=NAME    existing interface to add to the bridge; carries the sandbox's VLANs tagged
  mtu=N          tap MTU, 68..65521 (default: the kernel's, 1500)
  queues=N       tap queues, 1..256 (more than 1: multi-queue, one fd per queue)
  filter=MODE    mac (default): drop frames from the sandbox with any other source MAC;
                 strict: also deliver it only broadcast, multicast and its own unicast;
                 off: no filter
  isolated=yes   bridge port isolation: no traffic with other isolated ports
  owner=UID[:GID]  who may open the tap's queues without CAP_NET_ADMIN

Needs CAP_NET_ADMIN. `up` is idempotent; `down` removes exactly what `up` created (a
bridge or uplink that was there before stays as it was); a failed `up` leaves nothing.
Exit status: 0, or 125 with the error on stderr.

Examples:
  stockade net up id=web1,bridge=br-sb,vlan=10,uplink=eth1
  stockade net show web1
  stockade net down web1)";

void print_report(std::ostream& out, std::string_view id, const DownReport& report) {
    if (!report.was_up) {
        out << fmt::format("{}: not up, nothing to do\n", id);
        return;
    }
    out << fmt::format("{}: down\n", id);
    for (const auto& r : report.removed)
        out << fmt::format("  removed   {}\n", r);
    for (const auto& r : report.handed_over)
        out << fmt::format("  handed    {}\n", r);
    for (const auto& r : report.kept)
        out << fmt::format("  kept      {}\n", r);
}

}  // namespace

int net_cli(std::span<const std::string> args) {
    return net_cli(args, std::cout, std::cerr);
}

int net_cli(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    CLI::App app{"Sets up and tears down sandbox networks: taps, bridges, VLANs, MAC filters.",
                 "stockade net"};
    app.footer(kSpecHelp);
    app.require_subcommand(1);
    std::string state_dir{kDefaultStateDir};
    app.add_option("--state-dir", state_dir, "where the records live")->capture_default_str();

    std::vector<std::string> up_specs, down_args, show_ids;
    bool json = false;
    auto* up_cmd = app.add_subcommand("up", "create the network of each SPEC");
    up_cmd->add_option("SPEC", up_specs, "network spec, see below")->required();
    auto* down_cmd = app.add_subcommand("down", "remove what `up` created");
    down_cmd->add_option("ID|SPEC", down_args, "sandbox id, or a spec with id=")->required();
    auto* show_cmd = app.add_subcommand("show", "print the records (all when no ID is given)");
    show_cmd->add_option("ID", show_ids, "sandbox id");
    show_cmd->add_flag("--json", json, "print the records as JSON");

    try {
        // CLI11 takes a vector in reverse order.
        std::vector<std::string> reversed(args.rbegin(), args.rend());
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        return app.exit(e, out, err) == 0 ? 0 : kExitFailure;
    }

    NetOptions options;
    options.state_dir = state_dir;
    int status = 0;
    if (up_cmd->parsed()) {
        // Parse every spec before bringing any up: bad input changes nothing.
        std::vector<NetSpec> specs;
        for (const auto& text : up_specs) {
            auto spec = parse_net_spec(text);
            if (!spec) {
                err << fmt::format("stockade net up: {}\n", spec.error().message);
                return kExitFailure;
            }
            specs.push_back(std::move(*spec));
        }
        for (const auto& spec : specs) {
            auto r = up(spec, options);
            if (!r) {
                err << fmt::format("stockade: {}\n", r.error().message);
                status = kExitFailure;
                continue;
            }
            out << fmt::format("{}: {}\n", spec.id, r->already_up ? "already up" : "up");
            out << describe(r->state);
        }
    } else if (down_cmd->parsed()) {
        for (const auto& arg : down_args) {
            std::string id = arg;
            if (arg.find('=') != std::string::npos) {
                auto spec = parse_net_spec(arg);
                if (!spec) {
                    err << fmt::format("stockade net down: {}\n", spec.error().message);
                    status = kExitFailure;
                    continue;
                }
                id = spec->id;
            }
            auto r = down(id, options);
            if (!r) {
                err << fmt::format("stockade: {}\n", r.error().message);
                status = kExitFailure;
                continue;
            }
            print_report(out, id, *r);
        }
    } else if (show_cmd->parsed()) {
        auto states = show(options, show_ids);
        if (!states) {
            err << fmt::format("stockade: {}\n", states.error().message);
            return kExitFailure;
        }
        if (json) {
            out << "[";
            for (std::size_t i = 0; i < states->size(); ++i)
                out << (i ? "," : "") << "\n" << state_to_json((*states)[i]);
            out << "]\n";
        } else if (states->empty()) {
            out << fmt::format("no sandbox networks recorded in {}\n", options.state_dir);
        } else {
            for (const auto& s : *states)
                out << describe(s);
        }
    }
    return status;
}

}  // namespace stockade::net
