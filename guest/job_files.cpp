// The job archive's files, both ways (guest/job.hpp). Standard library only: stockade-init
// compiles this file too.
#include <charconv>
#include <cstdio>

#include "guest/job.hpp"

namespace stockade {
namespace {

constexpr std::size_t kMaxHostnameLength = 64;        // the kernel's __NEW_UTS_LEN
constexpr std::uint32_t kMaxVsockPort = 0xffff'fffe;  // 0xffffffff is VMADDR_PORT_ANY
constexpr std::string_view kWaitStart = "wait";       // guest/abi.hpp's kJobWaitStart

std::string nul_terminated(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) {
        out += s;
        out.push_back('\0');
    }
    return out;
}

// A file's text as an error message may quote it: printable ASCII as is, any other byte as
// \xNN, at most 80 bytes of it.
std::string quoted(std::string_view text) {
    constexpr std::size_t kMaxShown = 80;
    std::string out = "\"";
    for (char c : text.substr(0, kMaxShown)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
            out.push_back(c);
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", u);
            out += hex;
        }
    }
    if (text.size() > kMaxShown) out += "...";
    return out + "\"";
}

std::unexpected<std::string> bad(std::string_view file, std::string_view what) {
    std::string message(file);
    message += ": ";
    message += what;
    return std::unexpected(std::move(message));
}

// NUL-terminated items; empty items are kept (an argument may be "").
std::expected<std::vector<std::string>, std::string> items_of(std::string_view file,
                                                              std::string_view text) {
    std::vector<std::string> items;
    if (!text.empty() && text.back() != '\0')
        return bad(file, "the last item is not NUL-terminated");
    for (std::size_t start = 0, end; start < text.size(); start = end + 1) {
        end = text.find('\0', start);
        items.emplace_back(text.substr(start, end - start));
    }
    return items;
}

// One string: any byte but NUL.
std::expected<std::string, std::string> text_of(std::string_view file, std::string_view text) {
    if (text.find('\0') != std::string_view::npos) return bad(file, "contains a NUL byte");
    return std::string(text);
}

// A decimal number of at most `max`: digits only, no sign, no spaces.
std::optional<std::uint32_t> decimal(std::string_view text, std::uint32_t max) {
    std::uint32_t v = 0;
    if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v > max) return std::nullopt;
    return v;
}

// "xx:xx:xx:xx:xx:xx", lower-case hex: the form /sys/class/net/IF/address shows.
bool is_mac(std::string_view mac) {
    if (mac.size() != 17) return false;
    for (std::size_t i = 0; i < mac.size(); ++i) {
        const char c = mac[i];
        if (i % 3 == 2 ? c != ':' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

// "FIRST SECOND": exactly two words, split at the only space.
std::optional<std::pair<std::string_view, std::string_view>> two_words(std::string_view text) {
    const auto space = text.find(' ');
    if (space == std::string_view::npos || text.find(' ', space + 1) != std::string_view::npos)
        return std::nullopt;
    return std::pair{text.substr(0, space), text.substr(space + 1)};
}

}  // namespace

std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    Ipv4Prefix out;
    std::string_view ip = text.substr(0, slash);
    for (int i = 0; i < 4; ++i) {
        const auto dot = i < 3 ? ip.find('.') : ip.size();
        if (dot == std::string_view::npos) return std::nullopt;
        const std::string_view octet = ip.substr(0, dot);
        const auto v = decimal(octet, 255);
        if (!v || octet.size() > 3 || (octet.size() > 1 && octet.front() == '0'))
            return std::nullopt;
        out.address = (out.address << 8) | *v;
        ip.remove_prefix(i < 3 ? dot + 1 : dot);
    }
    const std::string_view length = text.substr(slash + 1);
    const auto n = decimal(length, 32);
    if (!n || *n == 0 || (length.size() > 1 && length.front() == '0')) return std::nullopt;
    out.length = *n;
    return out;
}

JobFiles job_files(const Job& job) {
    JobFiles f;
    f.argv = nul_terminated(job.argv);
    f.env = nul_terminated(job.env);
    f.workdir = job.workdir;
    f.hostname = job.hostname;
    if (!job.root.device.empty()) f.root = job.root.device + (job.root.read_only ? " ro" : " rw");
    if (job.net) f.net = job.net->mac + " " + job.net->address;
    if (job.vsock_port) {
        // Ten digits whatever the port (guest/job.hpp).
        char port[16];
        std::snprintf(port, sizeof port, "%010u", static_cast<unsigned>(*job.vsock_port));
        f.vsock = port;
    }
    if (job.wait_for_start) f.wait_start = std::string(kWaitStart);
    return f;
}

std::expected<Job, std::string> parse_job_files(const JobFiles& files) {
    namespace abi = guest_abi;
    Job job;

    if (!files.argv) return bad(abi::kJobArgv, "missing (the job has no command)");
    auto argv = items_of(abi::kJobArgv, *files.argv);
    if (!argv) return std::unexpected(std::move(argv).error());
    if (argv->empty() || argv->front().empty())
        return bad(abi::kJobArgv, "the command (the first item) is empty");
    job.argv = std::move(*argv);

    if (files.env) {
        auto env = items_of(abi::kJobEnv, *files.env);
        if (!env) return std::unexpected(std::move(env).error());
        for (const std::string& e : *env) {
            const auto eq = e.find('=');
            if (eq == std::string::npos || eq == 0)
                return bad(abi::kJobEnv, quoted(e) + " is not NAME=value");
        }
        job.env = std::move(*env);
    }

    if (files.workdir) {
        auto dir = text_of(abi::kJobWorkdir, *files.workdir);
        if (!dir) return std::unexpected(std::move(dir).error());
        if (dir->empty() || dir->front() != '/')
            return bad(abi::kJobWorkdir, quoted(*dir) + " is not an absolute path");
        job.workdir = std::move(*dir);
    }

    if (files.hostname) {
        auto name = text_of(abi::kJobHostname, *files.hostname);
        if (!name) return std::unexpected(std::move(name).error());
        if (name->empty() || name->size() > kMaxHostnameLength)
            return bad(abi::kJobHostname, quoted(*name) + " is not 1 to 64 bytes");
        job.hostname = std::move(*name);
    }

    if (files.root) {
        auto root = text_of(abi::kJobRoot, *files.root);
        if (!root) return std::unexpected(std::move(root).error());
        const auto words = two_words(*root);
        if (!words || words->first.empty() || words->first.front() != '/' ||
            (words->second != "ro" && words->second != "rw"))
            return bad(abi::kJobRoot, quoted(*root) + " is not \"DEVICE ro|rw\" (DEVICE a path)");
        job.root = JobRoot{std::string(words->first), words->second == "ro"};
    }

    if (files.net) {
        auto net = text_of(abi::kJobNet, *files.net);
        if (!net) return std::unexpected(std::move(net).error());
        const auto words = two_words(*net);
        if (!words) return bad(abi::kJobNet, quoted(*net) + " is not \"MAC A.B.C.D/N\"");
        if (!is_mac(words->first))
            return bad(abi::kJobNet, quoted(words->first) +
                                         " is not a MAC address (xx:xx:xx:xx:xx:xx, lower case)");
        if (!parse_ipv4_prefix(words->second))
            return bad(abi::kJobNet,
                       quoted(words->second) + " is not an address A.B.C.D/N (N 1 to 32)");
        job.net = JobNet{std::string(words->first), std::string(words->second)};
    }

    if (files.vsock) {
        const auto port = decimal(*files.vsock, kMaxVsockPort);
        if (!port || *port == 0)
            return bad(abi::kJobVsock,
                       quoted(*files.vsock) + " is not a port number (1 to 4294967294)");
        job.vsock_port = *port;
    }

    if (files.wait_start) {
        if (*files.wait_start != kWaitStart)
            return bad(abi::kJobWaitStart, quoted(*files.wait_start) + " is not \"wait\"");
        job.wait_for_start = true;
    }
    return job;
}

}  // namespace stockade
