// How long one sandbox's network takes to set up and tear down, through the same calls
// `stockade run` (NetworkHandle) and `stockade net up|down` make. Runs in a network
// namespace of its own, so it touches nothing else; prints a Markdown table.
#include <sched.h>
#include <stdlib.h>

#include <netlink/route/link/veth.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "netsetup/link.hpp"
#include "netsetup/netlink.hpp"
#include "netsetup/network.hpp"
#include "netsetup/spec.hpp"

namespace {

using namespace stockade;
using namespace stockade::net;
using Clock = std::chrono::steady_clock;

struct Stats {
    double median_ms, p90_ms, min_ms;
};

Stats stats(std::vector<double> ms) {
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) {
        return ms[static_cast<std::size_t>(q * static_cast<double>(ms.size() - 1))];
    };
    return {at(0.5), at(0.9), ms.front()};
}

double since_ms(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "netsetup_bench: %s\n", what.c_str());
    std::exit(1);
}

template <typename T>
T check(Result<T> r, const std::string& what) {
    if (!r) die(fmt::format("{}: {}", what, r.error().message));
    return std::move(*r);
}

NetSpec spec(const std::string& text) {
    return check(parse_net_spec(text), "spec " + text);
}

struct Scenario {
    std::string name;
    std::string spec;
    bool persistent;  // stockade net up/down; else NetworkHandle (stockade run)
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Times netsetup's up and down (median of --runs) in a private network namespace."};
    int runs = 100;
    app.add_option("--runs", runs, "runs per scenario")->check(CLI::Range(1, 100000));
    CLI11_PARSE(app, argc, argv);

    if (::unshare(CLONE_NEWNET) != 0) die("unshare(CLONE_NEWNET) (needs CAP_SYS_ADMIN)");
    char tmpl[] = "/tmp/stockade-netbench.XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp");
    NetOptions options;
    options.state_dir = std::string(tmpl) + "/net";

    // The fixtures: a bridge another sandbox already made, and a spare uplink (a veth).
    auto nl = check(Netlink::connect(), "netlink");
    if (int rc = rtnl_link_veth_add(nl.sock(), "upl0", "upl1", ::getpid()); rc < 0)
        die(fmt::format("creating veth upl0: {}", nl_geterror(rc)));
    auto holder = check(up(spec("id=holder,bridge=br-shared,vlan=10"), options), "holder");
    holder.tap_fds.clear();

    const std::vector<Scenario> scenarios = {
        {"run: tap on an existing bridge, VLAN 10, MAC filter", "id=bench,bridge=br-shared,vlan=10",
         false},
        {"run: same, strict filter, trunk 20+30, isolated, 4 queues",
         "id=bench,bridge=br-shared,vlan=10,trunk=20+30,filter=strict,isolated=yes,queues=4",
         false},
        {"run: first sandbox: new bridge, uplink, VLAN 10",
         "id=bench,bridge=br-new,vlan=10,uplink=upl0", false},
        {"run: tap alone, no bridge, no filter", "id=bench,filter=off", false},
        {"net up/down: persistent tap on an existing bridge", "id=bench,bridge=br-shared,vlan=10",
         true},
    };

    std::printf("netsetup: set-up and tear-down of one sandbox's network, %d runs each (ms)\n\n",
                runs);
    std::printf("| scenario | up median | up p90 | up min | down median | down p90 | down min |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& sc : scenarios) {
        auto s = spec(sc.spec);
        std::vector<double> up_ms, down_ms;
        for (int i = 0; i < runs; ++i) {
            if (sc.persistent) {
                auto t0 = Clock::now();
                auto r = check(up(s, options), "up");
                up_ms.push_back(since_ms(t0));
                r.tap_fds.clear();
                t0 = Clock::now();
                check(down(s.id, options), "down");
                down_ms.push_back(since_ms(t0));
            } else {
                auto t0 = Clock::now();
                auto h = check(NetworkHandle::open(s, options), "open");
                up_ms.push_back(since_ms(t0));
                t0 = Clock::now();
                check(h.close(), "close");
                down_ms.push_back(since_ms(t0));
            }
        }
        auto u = stats(up_ms), d = stats(down_ms);
        std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", sc.name.c_str(),
                    u.median_ms, u.p90_ms, u.min_ms, d.median_ms, d.p90_ms, d.min_ms);
    }
    check(down("holder", options), "holder down");
    std::filesystem::remove_all(tmpl);
    return 0;
}
