#include "policy/privileges.hpp"

#include <cap-ng.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <sstream>

#include "base/io.hpp"

namespace stockade::policy {
namespace {

bool has_effective(int cap) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &hdr, data) != 0) return false;
    return (data[cap / 32].effective >> (cap % 32)) & 1u;
}

// In an unprivileged user namespace setgroups(2) is disabled ("deny" in /proc/PID/setgroups,
// required before the gid map could be written): the groups cannot be changed and the kernel
// shows the unmapped ones as the overflow gid. Told apart without /proc (gone after
// pivot_root): with CAP_SETGID held, EPERM from setgroups has no other cause.
bool setgroups_denied() {
    return has_effective(CAP_SETGID);
}

// The checks after the drop, by system calls, because /proc may be gone (after pivot_root).
Result<> verify_now(std::uint32_t uid, std::uint32_t gid, bool groups_locked) {
    std::vector<std::string> wrong;
    uid_t r = 0, e = 0, s = 0;
    if (::getresuid(&r, &e, &s) != 0) return fail_sys("getresuid");
    if (r != uid || e != uid || s != uid) wrong.push_back(fmt::format("uids {} {} {}", r, e, s));
    gid_t gr = 0, ge = 0, gs = 0;
    if (::getresgid(&gr, &ge, &gs) != 0) return fail_sys("getresgid");
    if (gr != gid || ge != gid || gs != gid)
        wrong.push_back(fmt::format("gids {} {} {}", gr, ge, gs));
    if (!groups_locked && ::getgroups(0, nullptr) != 0)
        wrong.push_back(fmt::format("{} supplementary groups", ::getgroups(0, nullptr)));

    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &hdr, data) != 0) return fail_sys("capget");
    for (const auto& d : data)
        if (d.effective || d.permitted || d.inheritable) {
            wrong.emplace_back("effective, permitted or inheritable capabilities");
            break;
        }
    for (int cap = 0; cap < 64; ++cap) {
        int in_bounding = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in_bounding < 0) break;  // EINVAL past the kernel's last capability
        if (in_bounding > 0) {
            wrong.push_back(fmt::format("capability {} in the bounding set", cap));
            break;
        }
        if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0) {
            wrong.push_back(fmt::format("capability {} in the ambient set", cap));
            break;
        }
    }
    if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) wrong.emplace_back("no_new_privs unset");
    if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) wrong.emplace_back("still dumpable");
    if (!wrong.empty()) return fail("privilege drop did not hold: {}", fmt::join(wrong, ", "));
    return {};
}

std::uint64_t parse_hex(std::string_view s) {
    std::uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v, 16);
    return v;
}

}  // namespace

Result<> drop_privileges(std::uint32_t uid, std::uint32_t gid) {
    // The bounding set goes first, while CAP_SETPCAP is still held. Not through libcap-ng:
    // its capng_apply(CAPNG_SELECT_BOUNDS) reads /proc/<tid>/status before and after, and
    // after pivot_root there is no /proc (or, before a fresh one is mounted in a new PID
    // namespace, that path names another process).
    for (int cap = 0; cap < 64; ++cap) {
        int in_set = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in_set < 0) break;  // past the kernel's last capability
        if (in_set > 0 && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            return fail_sys(fmt::format(
                "dropping privileges: removing capability {} from the bounding set", cap));
    }
    // libcap-ng's state: every set empty. Ambient now, the other sets after the uid change.
    capng_clear(CAPNG_SELECT_ALL);
    if (capng_apply(CAPNG_SELECT_AMBIENT) != 0)
        return fail_sys("dropping privileges: clearing the ambient capability set",
                        errno ? errno : EPERM);
    bool groups_locked = false;
    if (::setgroups(0, nullptr) != 0) {
        int err = errno;
        if (err != EPERM || !setgroups_denied())
            return fail_sys("dropping privileges: setgroups([])", err);
        groups_locked = true;
    }
    if (::setresgid(gid, gid, gid) != 0)
        return fail_sys(fmt::format("dropping privileges: setresgid({})", gid));
    if (::setresuid(uid, uid, uid) != 0)
        return fail_sys(fmt::format("dropping privileges: setresuid({})", uid));
    // A uid change away from 0 already empties them, but not a drop to uid 0 inside a user
    // namespace, nor one with SECBIT_KEEP_CAPS: clear them explicitly.
    if (capng_apply(CAPNG_SELECT_CAPS) != 0)
        return fail_sys("dropping privileges: clearing the capability sets", errno ? errno : EPERM);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail_sys("dropping privileges: prctl(PR_SET_NO_NEW_PRIVS)");
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return fail_sys("dropping privileges: prctl(PR_SET_DUMPABLE, 0)");
    return verify_now(uid, gid, groups_locked);
}

Result<ProcessStatus> parse_process_status(const std::string& text) {
    ProcessStatus st;
    std::istringstream in(text);
    std::string line;
    bool saw_caps = false;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string_view key(line.data(), colon);
        std::string value = line.substr(colon + 1);
        std::istringstream vs(value);
        if (key == "CapInh") {
            st.cap_inh = parse_hex(value.substr(value.find_first_not_of(" \t")));
            saw_caps = true;
        } else if (key == "CapPrm") {
            st.cap_prm = parse_hex(value.substr(value.find_first_not_of(" \t")));
        } else if (key == "CapEff") {
            st.cap_eff = parse_hex(value.substr(value.find_first_not_of(" \t")));
        } else if (key == "CapBnd") {
            st.cap_bnd = parse_hex(value.substr(value.find_first_not_of(" \t")));
        } else if (key == "CapAmb") {
            st.cap_amb = parse_hex(value.substr(value.find_first_not_of(" \t")));
        } else if (key == "NoNewPrivs") {
            vs >> st.no_new_privs;
        } else if (key == "Seccomp") {
            vs >> st.seccomp;
        } else if (key == "Seccomp_filters") {
            vs >> st.seccomp_filters;
        } else if (key == "Uid") {
            for (auto& u : st.uid)
                vs >> u;
        } else if (key == "Gid") {
            for (auto& g : st.gid)
                vs >> g;
        } else if (key == "Groups") {
            std::uint32_t g = 0;
            while (vs >> g)
                st.groups.push_back(g);
        }
    }
    if (!saw_caps) return fail("process status: no capability lines");
    return st;
}

Result<ProcessStatus> read_process_status(const std::string& which) {
    auto path = fmt::format("/proc/{}/status", which);
    auto text = STOCKADE_TRY(read_text_file(path));
    auto st = parse_process_status(text);
    if (!st) return std::unexpected(std::move(st).error().context(path));
    return st;
}

Result<> verify_dropped(const ProcessStatus& s, std::uint32_t uid, std::uint32_t gid) {
    std::vector<std::string> wrong;
    auto cap = [&](const char* name, std::uint64_t v) {
        if (v != 0) wrong.push_back(fmt::format("{} {:016x}", name, v));
    };
    cap("CapInh", s.cap_inh);
    cap("CapPrm", s.cap_prm);
    cap("CapEff", s.cap_eff);
    cap("CapBnd", s.cap_bnd);
    cap("CapAmb", s.cap_amb);
    if (s.no_new_privs != 1) wrong.push_back(fmt::format("NoNewPrivs {}", s.no_new_privs));
    for (auto u : s.uid)
        if (u != uid) {
            wrong.push_back(fmt::format("Uid {} {} {} {}", s.uid[0], s.uid[1], s.uid[2], s.uid[3]));
            break;
        }
    for (auto g : s.gid)
        if (g != gid) {
            wrong.push_back(fmt::format("Gid {} {} {} {}", s.gid[0], s.gid[1], s.gid[2], s.gid[3]));
            break;
        }
    if (!s.groups.empty()) wrong.push_back(fmt::format("Groups {}", fmt::join(s.groups, " ")));
    if (!wrong.empty())
        return fail(
            "process status after the drop (expected uid {} gid {}, no groups, no "
            "capabilities, NoNewPrivs 1): {}",
            uid, gid, fmt::join(wrong, ", "));
    return {};
}

}  // namespace stockade::policy
