// The job archive's files, both ways (guest/job.hpp). Standard library only: stockade-init
// compiles this file too.
#include <algorithm>
#include <charconv>
#include <cstdio>

#include "guest/job.hpp"

namespace stockade {
namespace {

constexpr std::size_t kMaxHostnameLength = 64;        // the kernel's __NEW_UTS_LEN
constexpr std::uint32_t kMaxVsockPort = 0xffff'fffe;  // 0xffffffff is VMADDR_PORT_ANY
constexpr std::string_view kWaitStart = "wait";       // guest/abi.hpp's kJobWaitStart
constexpr std::string_view kTerminal = "pty";         // guest/abi.hpp's kJobTerminal

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

// A decimal or (base 16) hex number up to `max`: digits only, no sign, prefix or spaces.
std::optional<std::uint64_t> number(std::string_view text, int base, std::uint64_t max) {
    std::uint64_t v = 0;
    if (text.empty() || text.size() > 20) return std::nullopt;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
    if (ec != std::errc{} || end != text.data() + text.size() || v > max) return std::nullopt;
    return v;
}

std::string hex(std::uint64_t v) {
    char out[24];
    std::snprintf(out, sizeof out, "%llx", static_cast<unsigned long long>(v));
    return out;
}

std::vector<std::string_view> split_view(std::string_view text, char sep) {
    std::vector<std::string_view> out;
    for (std::size_t start = 0;;) {
        const auto end = text.find(sep, start);
        out.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos) return out;
        start = end + 1;
    }
}

constexpr std::uint32_t kRlimits = 16;             // RLIM_NLIMITS
constexpr std::size_t kMaxBpfInstructions = 4096;  // BPF_MAXINSNS

std::string hex_bytes(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(kDigits[u >> 4]);
        out.push_back(kDigits[u & 15]);
    }
    return out;
}

// Lower-case hex (as hex_bytes writes it) back to bytes; nullopt for anything else.
std::optional<std::string> bytes_of_hex(std::string_view text) {
    if (text.size() % 2 != 0) return std::nullopt;
    const auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    std::string out;
    out.reserve(text.size() / 2);
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const int hi = digit(text[i]), lo = digit(text[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi << 4 | lo));
    }
    return out;
}

std::string process_text(const JobProcess& p) {
    std::string out = "user\t" + std::to_string(p.uid) + "\t" + std::to_string(p.gid);
    for (std::uint32_t g : p.groups)
        out += "\t" + std::to_string(g);
    out += "\n";
    for (const JobRlimit& r : p.rlimits)
        out += "rlimit\t" + std::to_string(r.resource) + "\t" + std::to_string(r.soft) + "\t" +
               std::to_string(r.hard) + "\n";
    if (p.caps)
        out += "caps\t" + hex(p.caps->bounding) + "\t" + hex(p.caps->effective) + "\t" +
               hex(p.caps->permitted) + "\t" + hex(p.caps->inheritable) + "\t" +
               hex(p.caps->ambient) + "\n";
    if (p.no_new_privileges) out += "no-new-privileges\n";
    if (p.own_mounts) out += "mounts\n";
    if (p.read_only_root) out += "read-only-root\n";
    if (p.umask) {
        char mode[16];
        std::snprintf(mode, sizeof mode, "%o", static_cast<unsigned>(*p.umask));
        out += std::string("umask\t") + mode + "\n";
    }
    if (p.pids_max) out += "pids-max\t" + std::to_string(*p.pids_max) + "\n";
    for (const JobMount& m : p.mounts)
        out += "mount\t" + m.type + "\t" + (m.type == kCopyMount ? hex_bytes(m.source) : m.source) +
               "\t" + m.destination + "\t" + hex(m.flags) + "\t" + m.data + "\n";
    for (const auto& [key, value] : p.sysctl)
        out += "sysctl\t" + key + "\t" + value + "\n";
    if (!p.seccomp.empty()) out += "seccomp\t" + hex_bytes(p.seccomp) + "\n";
    for (const std::string& path : p.masked)
        out += "masked\t" + path + "\n";
    for (const std::string& path : p.readonly)
        out += "readonly\t" + path + "\n";
    return out;
}

bool absolute_path(std::string_view path) {
    return !path.empty() && path.front() == '/';
}

// One line of the process file into `p`; false when it is not one of the documented forms.
bool process_line(std::string_view line, JobProcess& p) {
    const std::vector<std::string_view> f = split_view(line, '\t');
    const std::string_view key = f.front();
    // 4294967295 is -1, which setresuid and setgroups take as "leave it unchanged".
    const auto u32 = [](std::string_view t) { return number(t, 10, 0xffff'fffe); };
    if (key == "user" && f.size() >= 3) {
        const auto uid = u32(f[1]), gid = u32(f[2]);
        if (!uid || !gid) return false;
        p.uid = static_cast<std::uint32_t>(*uid);
        p.gid = static_cast<std::uint32_t>(*gid);
        p.groups.clear();
        for (std::size_t i = 3; i < f.size(); ++i) {
            const auto g = u32(f[i]);
            if (!g) return false;
            p.groups.push_back(static_cast<std::uint32_t>(*g));
        }
        return true;
    }
    if (key == "rlimit" && f.size() == 4) {
        const auto res = number(f[1], 10, kRlimits - 1);
        const auto soft = number(f[2], 10, ~std::uint64_t{0});
        const auto hard = number(f[3], 10, ~std::uint64_t{0});
        if (!res || !soft || !hard || *soft > *hard) return false;
        p.rlimits.push_back({static_cast<std::uint32_t>(*res), *soft, *hard});
        return true;
    }
    if (key == "caps" && f.size() == 6) {
        std::uint64_t v[5];
        for (int i = 0; i < 5; ++i) {
            const auto m = number(f[static_cast<std::size_t>(i) + 1], 16, ~std::uint64_t{0});
            if (!m) return false;
            v[i] = *m;
        }
        p.caps = JobCaps{v[0], v[1], v[2], v[3], v[4]};
        return true;
    }
    if (key == "no-new-privileges" && f.size() == 1) return p.no_new_privileges = true;
    if (key == "mounts" && f.size() == 1) return p.own_mounts = true;
    if (key == "read-only-root" && f.size() == 1) return p.read_only_root = true;
    if (key == "umask" && f.size() == 2) {
        const auto mode = number(f[1], 8, 0777);
        if (!mode) return false;
        p.umask = static_cast<std::uint32_t>(*mode);
        return true;
    }
    if (key == "pids-max" && f.size() == 2) {
        const auto n = number(f[1], 10, ~std::uint64_t{0});
        if (!n || *n == 0) return false;
        p.pids_max = *n;
        return true;
    }
    if (key == "mount" && f.size() == 6) {
        const auto flags = number(f[4], 16, ~std::uint64_t{0});
        if (f[1].empty() || !absolute_path(f[3]) || !flags) return false;
        std::string source(f[2]);
        if (f[1] == kCopyMount) {
            auto bytes = bytes_of_hex(f[2]);
            if (!bytes || bytes->size() > kMaxCopyBytes || !number(f[5], 8, 07777) ||
                f[5].size() > 4)
                return false;
            source = std::move(*bytes);
        }
        p.mounts.push_back(
            {std::string(f[1]), std::move(source), std::string(f[3]), *flags, std::string(f[5])});
        return true;
    }
    if (key == "sysctl" && f.size() == 3 && is_sysctl_name(f[1])) {
        p.sysctl.emplace_back(f[1], f[2]);
        return true;
    }
    if (key == "seccomp" && f.size() == 2) {
        auto bytes = bytes_of_hex(f[1]);
        if (!bytes || bytes->empty() || bytes->size() % 8 != 0 ||
            bytes->size() / 8 > kMaxBpfInstructions)
            return false;
        p.seccomp = std::move(*bytes);
        return true;
    }
    if ((key == "masked" || key == "readonly") && f.size() == 2 && absolute_path(f[1])) {
        (key == "masked" ? p.masked : p.readonly).emplace_back(f[1]);
        return true;
    }
    return false;
}

}  // namespace

bool is_sysctl_name(std::string_view key) {
    if (key.empty() || key.front() == '.' || key.back() == '.' ||
        key.find("..") != std::string_view::npos)
        return false;
    for (char c : key)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    return true;
}

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
    if (job.net)
        f.net = job.net->mac + " " + job.net->address +
                (job.net->gateway.empty() ? "" : " " + job.net->gateway);
    if (job.vsock_port) {
        // Ten digits whatever the port (guest/job.hpp).
        char port[16];
        std::snprintf(port, sizeof port, "%010u", static_cast<unsigned>(*job.vsock_port));
        f.vsock = port;
    }
    if (job.wait_for_start) f.wait_start = std::string(kWaitStart);
    if (job.terminal) f.terminal = std::string(kTerminal);
    if (job.process) f.process = process_text(*job.process);
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
        const std::vector<std::string_view> w = split_view(*net, ' ');
        // (An empty MAC or address of two words is named by its own check below.)
        if (w.size() < 2 || w.size() > 3 ||
            (w.size() == 3 && std::ranges::any_of(w, &std::string_view::empty)))
            return bad(abi::kJobNet, quoted(*net) + " is not \"MAC A.B.C.D/N [GATEWAY]\"");
        const auto words = std::optional{std::pair{w[0], w[1]}};
        const std::string_view gateway = w.size() == 3 ? w[2] : std::string_view{};
        if (!is_mac(words->first))
            return bad(abi::kJobNet, quoted(words->first) +
                                         " is not a MAC address (xx:xx:xx:xx:xx:xx, lower case)");
        if (!parse_ipv4_prefix(words->second))
            return bad(abi::kJobNet,
                       quoted(words->second) + " is not an address A.B.C.D/N (N 1 to 32)");
        if (!gateway.empty() && (!parse_ipv4_prefix(std::string(gateway) + "/32") ||
                                 gateway.find('/') != std::string_view::npos))
            return bad(abi::kJobNet, quoted(gateway) + " is not a gateway address A.B.C.D");
        job.net =
            JobNet{std::string(words->first), std::string(words->second), std::string(gateway)};
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

    if (files.terminal) {
        if (*files.terminal != kTerminal)
            return bad(abi::kJobTerminal, quoted(*files.terminal) + " is not \"pty\"");
        if (!job.vsock_port)
            return bad(abi::kJobTerminal, "without vsock stdio (the console is the terminal then)");
        job.terminal = true;
    }

    if (files.process) {
        auto text = text_of(abi::kJobProcess, *files.process);
        if (!text) return std::unexpected(std::move(text).error());
        if (text->empty() || text->back() != '\n')
            return bad(abi::kJobProcess, "the last line does not end with a newline");
        JobProcess p;
        text->pop_back();
        for (std::string_view line : split_view(*text, '\n'))
            if (!process_line(line, p))
                return bad(abi::kJobProcess, quoted(line) + " is not a process line");
        if (p.mounts.size() > 0 && !p.own_mounts)
            return bad(abi::kJobProcess, "mount lines without a mounts line");
        job.process = std::move(p);
    }
    return job;
}

}  // namespace stockade
