// Privilege drop in forked children. Runs as root (CI) and as a normal user: the user
// namespace cases give an unprivileged test full capabilities to drop; the real-root case
// runs where the tests run as root.
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <linux/capability.h>

#include "base/io.hpp"
#include "policy/namespaces.hpp"
#include "policy/privileges.hpp"
#include "tests/support/child.hpp"
#include "tests/unit/policy/namespace_child.hpp"

namespace stockade::policy {
namespace {

using test::describe_status;
using test::exited_ok;
using test::run_in_child;

constexpr std::uint32_t kId = 12345;

// The child's checks, by exit code: 0 all held.
int check_dropped(std::uint32_t uid, std::uint32_t gid, bool groups_may_stay) {
    auto st = read_process_status("self");
    if (!st) return 20;
    if (st->cap_eff || st->cap_prm || st->cap_inh) return 21;
    if (st->cap_bnd) return 22;
    if (st->cap_amb) return 23;
    if (st->no_new_privs != 1) return 24;
    for (auto u : st->uid)
        if (u != uid) return 25;
    for (auto g : st->gid)
        if (g != gid) return 26;
    // Unprivileged, setgroups is disabled in the namespace: the groups from outside stay,
    // shown as the overflow gid (or as `gid` for the one mapped group). Otherwise none.
    for (auto g : st->groups)
        if (!groups_may_stay || (g != 65534 && g != gid)) return 27;
    if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return 28;
    // And they cannot come back.
    if (::setuid(0) == 0 || ::setgid(0) == 0) return 29;
    if (::prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0) return 30;
    return 0;
}

TEST(policy_privileges, DropInUserNamespaceClearsEverything) {
    // In a user namespace the child holds every capability (and uid kId is all that is
    // mapped), which exercises the explicit clearing: a drop to the same uid would keep them.
    const bool unprivileged = ::geteuid() != 0;
    int st = run_in_child([unprivileged]() -> int {
        continue_in_namespaces({Namespace::user}, kId);
        auto before = read_process_status("self");
        if (!before || before->cap_eff == 0) ::_exit(11);  // nothing to drop: test is void
        if (auto r = drop_privileges(kId, kId); !r) {
            (void)write_all(2, r.error().message + "\n");
            ::_exit(12);
        }
        ::_exit(check_dropped(kId, kId, unprivileged));
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_privileges, DropAsRealRoot) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs real root; the user-namespace test covers the unprivileged case";
    int st = run_in_child([] {
        if (auto r = drop_privileges(65534, 65534); !r) {
            (void)write_all(2, r.error().message + "\n");
            return 12;
        }
        if (int c = check_dropped(65534, 65534, false); c != 0) return c;
        auto status = read_process_status("self");
        return status && verify_dropped(*status, 65534, 65534) ? 0 : 31;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_privileges, FailureNamesTheStep) {
    // Only kId is mapped in the namespace: another gid cannot be set.
    int st = run_in_child([]() -> int {
        continue_in_namespaces({Namespace::user}, kId);
        auto r = drop_privileges(kId, kId + 1);
        if (r) ::_exit(1);
        ::_exit(r.error().message.find("dropping privileges: setresgid(12346): Invalid argument") !=
                        std::string::npos
                    ? 0
                    : 2);
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_process_status, ParsesTheSecurityLines) {
    const std::string text =
        "Name:\tx\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\nGroups:\t10 20 \nCapInh:\t0000000000000000\n"
        "CapPrm:\t000001ffffffffff\nCapEff:\t0000000000000001\nCapBnd:\t000001ffffffffff\n"
        "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\n";
    auto st = parse_process_status(text);
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_EQ(st->uid[0], 1u);
    EXPECT_EQ(st->uid[3], 4u);
    EXPECT_EQ(st->gid[2], 7u);
    EXPECT_EQ(st->groups, (std::vector<std::uint32_t>{10, 20}));
    EXPECT_EQ(st->cap_prm, 0x1ffffffffffu);
    EXPECT_EQ(st->cap_eff, 1u);
    EXPECT_EQ(st->no_new_privs, 1);
    EXPECT_EQ(st->seccomp, 2);
    EXPECT_EQ(st->seccomp_filters, 3);
    auto v = verify_dropped(*st, 1, 5);
    ASSERT_FALSE(v);
    for (const char* part : {"CapPrm 000001ffffffffff", "CapEff 0000000000000001", "Uid 1 2 3 4",
                             "Gid 5 6 7 8", "Groups 10 20"})
        EXPECT_NE(v.error().message.find(part), std::string::npos)
            << part << " in " << v.error().message;
    EXPECT_FALSE(parse_process_status("Name:\tx\n"));
}

TEST(policy_process_status, ReadsThisProcess) {
    auto st = read_process_status("self");
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_EQ(st->uid[0], ::getuid());
    EXPECT_EQ(st->gid[1], ::getegid());
    EXPECT_GE(st->seccomp, 0);
}

}  // namespace
}  // namespace stockade::policy
