#include "runner/supervisor/seal_helper.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/memory_loader.hpp"

namespace stockade {
namespace {

using json = nlohmann::json;

// What the helper's descriptors 0, 1, 3, 4 and 5 are (-1: /dev/null); 2 is always a pipe
// here.
struct HelperFds {
    int in = -1, out = -1, fd3 = -1, fd4 = -1, fd5 = -1;
};
constexpr std::size_t kHelperFds = 6;

struct Spawned {
    pid_t pid = -1;
    UniqueFd errors;
};

Result<UniqueFd> high_copy(int fd) {
    UniqueFd c(::fcntl(fd, F_DUPFD_CLOEXEC, 10));
    if (!c) return fail_sys("dup");
    return c;
}

Result<std::pair<UniqueFd, UniqueFd>> make_pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return fail_sys("pipe");
    return std::pair{UniqueFd(p[0]), UniqueFd(p[1])};
}

// In cgroup `cgroup` from its first instruction (clone3's CLONE_INTO_CGROUP; posix_spawn
// has no such attribute before glibc 2.39): the child only duplicates descriptors, closes the
// rest and executes, all async-signal-safe.
pid_t spawn_into_cgroup(int cgroup, const char* path, const std::array<UniqueFd, kHelperFds>& src,
                        char* const argv[], char* const env[]) {
    clone_args ca{};
    ca.flags = CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.cgroup = static_cast<std::uint64_t>(cgroup);
    const pid_t parent = ::getpid();
    const long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
    if (pid != 0) return static_cast<pid_t>(pid);
    // It goes with the supervisor (killed mid-restore), as nothing else would reap it.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
    for (std::size_t i = 0; i < src.size(); ++i)
        if (::dup2(src[i].get(), static_cast<int>(i)) < 0) ::_exit(127);
    ::close_range(static_cast<unsigned>(src.size()), ~0U, 0);
    ::execve(path, argv, env);
    // Its one line of error, on the error pipe (fd 2), as the helper's own would be.
    constexpr char kFailed[] = "stockade-seal could not be executed\n";
    (void)!::write(STDERR_FILENO, kFailed, sizeof kFailed - 1);
    ::_exit(127);
}

Result<Spawned> spawn(const std::vector<std::string>& args, HelperFds fds, int cgroup = -1) {
    const std::string path = STOCKADE_TRY(seal_helper_path());
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null) return fail_sys("/dev/null");
    auto [err_read, err_write] = STOCKADE_TRY(make_pipe());
    // Copies above 10, so that no source is also a target (dup2 onto itself would leave it
    // close-on-exec).
    std::array<UniqueFd, kHelperFds> src;
    const std::array<int, kHelperFds> wanted{fds.in,  fds.out, err_write.get(),
                                             fds.fd3, fds.fd4, fds.fd5};
    for (std::size_t i = 0; i < src.size(); ++i)
        src[i] = STOCKADE_TRY(high_copy(wanted[i] >= 0 ? wanted[i] : null.get()));
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(path.c_str()));
    for (const std::string& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    // No environment: nothing (OPENSSL_CONF, OPENSSL_MODULES, ...) can make the helper that
    // holds the key load other code.
    char* no_env[] = {nullptr};
    pid_t pid = -1;
    if (cgroup >= 0) {
        pid = spawn_into_cgroup(cgroup, path.c_str(), src, argv.data(), no_env);
        if (pid < 0) return fail_sys(fmt::format("running {} in the sandbox's cgroup", path));
        return Spawned{pid, std::move(err_read)};
    }
    posix_spawn_file_actions_t fa;
    if (::posix_spawn_file_actions_init(&fa) != 0) return fail("posix_spawn_file_actions_init");
    for (std::size_t i = 0; i < src.size(); ++i)
        ::posix_spawn_file_actions_adddup2(&fa, src[i].get(), static_cast<int>(i));
    // Nothing else of this process's goes with it, not even a descriptor it inherited open.
    ::posix_spawn_file_actions_addclosefrom_np(&fa, static_cast<int>(src.size()));
    const int rc = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), no_env);
    ::posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return fail_sys(fmt::format("running {}", path), rc);
    return Spawned{pid, std::move(err_read)};
}

std::string read_to_end(int fd, std::size_t max) {
    std::string out;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > max) return out;
    }
}

// The helper's end: 0, or its one line of error. Its stderr is read to its end first (a helper
// that wrote more than a pipe holds would otherwise wait on us while we wait on it).
// How a helper that ended with `status` did: its message on stderr (or, when it printed none,
// how it ended) after `what` unless it exited with 0.
Result<> helper_outcome(int status, std::string message, const std::string& what) {
    while (!message.empty() && message.back() == '\n')
        message.pop_back();
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    if (message.empty())
        message = WIFSIGNALED(status)
                      ? fmt::format("stockade-seal killed by signal {}", WTERMSIG(status))
                      : fmt::format("stockade-seal exited with status {}", WEXITSTATUS(status));
    return fail("{}: {}", what, message);
}

Result<> wait_helper(Spawned& s, const std::string& what) {
    std::string message = read_to_end(s.errors.get(), 4096);
    s.errors.reset();  // a helper still writing gets EPIPE, not a wait
    int status = 0;
    while (::waitpid(s.pid, &status, 0) < 0)
        if (errno != EINTR) return fail_sys("waitpid");
    s.pid = -1;
    return helper_outcome(status, std::move(message), what);
}

Result<SealedRecord> parse_record(std::string line) {
    while (!line.empty() && line.back() == '\n')
        line.pop_back();
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("size") ||
        !j["size"].is_number_unsigned() || !j.contains("sha256") || !j["sha256"].is_string())
        return fail("stockade-seal: a part record that is not one: {}", line.substr(0, 200));
    return SealedRecord{line, j["name"].get<std::string>(), j["size"].get<std::uint64_t>(),
                        j["sha256"].get<std::string>()};
}

}  // namespace

Result<std::string> seal_helper_path() {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return fail("/proc/self/exe: {}", ec.message());
    if (exe.parent_path().filename() == "bin") {
        const fs::path installed = exe.parent_path().parent_path() / "lib/stockade/stockade-seal";
        if (fs::is_regular_file(installed, ec)) return installed.string();
    }
    // The build tree's helper only for a program of that build tree: an installed stockade
    // never runs (as root, with the key) a file from wherever it was built.
    const std::string tree = std::string(STOCKADE_SEAL_HELPER_TREE) + "/";
    if (exe.string().starts_with(tree)) return std::string(STOCKADE_SEAL_HELPER);
    return fail("stockade-seal, which seals and opens snapshots, is not installed beside {}",
                exe.string());
}

Result<std::string> seal_key_path(const std::string& key) {
    if (key.empty()) return key;
    struct stat st {};
    if (::stat(key.c_str(), &st) != 0) return fail_sys(fmt::format("--seal-key {}", key));
    if (!S_ISREG(st.st_mode)) return fail("--seal-key {}: not a regular file", key);
    return std::filesystem::absolute(key).lexically_normal().string();
}

Result<> check_seal_key(const std::string& key) {
    auto s = STOCKADE_TRY(spawn({"check-key", key}, {}));
    return wait_helper(s, "--seal-key");
}

Result<std::unique_ptr<SealingPart>> SealingPart::start(const std::string& key,
                                                        const std::string& snapshot_id,
                                                        const std::string& part,
                                                        std::uint64_t limit, int file) {
    std::unique_ptr<SealingPart> p(new SealingPart());
    p->part_ = part;
    auto [data_read, data_write] = STOCKADE_TRY(make_pipe());
    auto [record_read, record_write] = STOCKADE_TRY(make_pipe());
    (void)::fcntl(data_write.get(), F_SETPIPE_SZ, 1 << 20);  // fewer wake-ups; else the default
    auto s = STOCKADE_TRY(spawn({"seal", key, snapshot_id, part, std::to_string(limit)},
                                {data_read.get(), file, record_write.get()}));
    p->pid_ = s.pid;
    p->errors_ = std::move(s.errors);
    p->write_ = std::move(data_write);
    p->record_ = std::move(record_read);
    return p;
}

SealingPart::~SealingPart() {
    cancel();
    if (pid_ > 0)
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
}

void SealingPart::cancel() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
}

Result<SealedRecord> SealingPart::finish(std::chrono::seconds limit) {
    write_.reset();
    // A sandbox that keeps its end open would keep the helper reading: past the limit the
    // helper is stopped and the part refused.
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(pid_, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (done == 0) {
        cancel();
        return fail("{}: the sandbox did not finish writing it within {} s", part_, limit.count());
    }
    // Reaped here (or failing to be: the destructor kills and reaps it).
    if (done == pid_) pid_ = -1;
    if (done < 0) return fail_sys("waitpid");
    STOCKADE_TRY_VOID(helper_outcome(status, read_to_end(errors_.get(), 4096), part_));
    auto r = STOCKADE_TRY(parse_record(read_to_end(record_.get(), 4096)));
    if (r.name != part_) return fail("{}: stockade-seal sealed {} instead", part_, r.name);
    return r;
}

Result<> seal_manifest_file(const std::string& key, const std::string& snapshot_id,
                            const std::vector<SealedRecord>& records, const std::string& document,
                            int file) {
    json list = json::array();
    for (const SealedRecord& r : records)
        list.push_back(json::parse(r.json));
    const std::string input = json{{"records", std::move(list)}, {"document", document}}.dump();
    // The input is written into a memory file first: the helper reads it to its end.
    UniqueFd in(::memfd_create("stockade-seal-manifest", MFD_CLOEXEC));
    if (!in) return fail_sys("memfd_create");
    STOCKADE_TRY_VOID(write_all(in.get(), input));
    if (::lseek(in.get(), 0, SEEK_SET) != 0) return fail_sys("lseek");
    auto s = STOCKADE_TRY(spawn({"seal-manifest", key, snapshot_id}, {in.get(), file, -1}));
    return wait_helper(s, "sealing the manifest");
}

Result<OpenedSealedManifest> open_sealed_manifest(const std::string& key, int manifest) {
    UniqueFd out(::memfd_create("stockade-seal-document", MFD_CLOEXEC));
    if (!out) return fail_sys("memfd_create");
    auto s = STOCKADE_TRY(spawn({"open-manifest", key}, {manifest, out.get(), -1}));
    STOCKADE_TRY_VOID(wait_helper(s, "manifest"));
    if (::lseek(out.get(), 0, SEEK_SET) != 0) return fail_sys("lseek");
    const json j = json::parse(read_to_end(out.get(), 64u << 20), nullptr, false);
    if (!j.is_object() || !j.contains("document") || !j["document"].is_string() ||
        !j.contains("records") || !j["records"].is_array())
        return fail("manifest: stockade-seal printed something else");
    OpenedSealedManifest m;
    m.document = j["document"].get<std::string>();
    if (j.contains("snapshot_id") && j["snapshot_id"].is_string())
        m.snapshot_id = j["snapshot_id"].get<std::string>();
    for (const json& r : j["records"])
        m.records.push_back(STOCKADE_TRY(parse_record(r.dump())));
    return m;
}

Result<> open_sealed_part(const std::string& key, const std::string& part, int file, int manifest,
                          int out, bool header_only, int cgroup) {
    const char* cmd = out >= 0 ? "open" : header_only ? "check" : "verify";
    auto s = STOCKADE_TRY(spawn({cmd, key, part}, {file, out, manifest}, cgroup));
    return wait_helper(s, part);
}

Result<UniqueFd> start_memory_loader(const std::string& key, const std::string& part, int file,
                                     int manifest, int cgroup, std::uint32_t uid, std::uint32_t gid,
                                     int state, int state_out) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return fail_sys("socketpair for the memory loader");
    UniqueFd ours(sv[0]), theirs(sv[1]);
    auto s = STOCKADE_TRY(spawn({"load", key, part, std::to_string(uid), std::to_string(gid)},
                                {file, theirs.get(), manifest, state, state_out}, cgroup));
    theirs.reset();
    // Its first line, once the memory part's header is checked and the state decrypted: that
    // it did, else its error (it ends), before any disk is given back its copy. Read a byte at
    // a time: what comes after the line is the sandbox's.
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    for (char c = 0; line.size() < 4096;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{ours.get(), POLLIN, 0};
        const int ready = left.count() <= 0 ? 0 : ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) {
            ::kill(s.pid, SIGKILL);
            (void)wait_helper(s, "the memory loader");
            return fail("{}: the memory loader did not open it within 2 minutes", part);
        }
        const ssize_t n = ::read(ours.get(), &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || c == '\n') break;
        line += c;
    }
    if (line != memory_loader::kOpenedLine) {
        // Its error ends it; anything else, it would go on waiting for the sandbox.
        ours.reset();
        if (!line.starts_with("error ")) ::kill(s.pid, SIGKILL);
        STOCKADE_TRY_VOID(wait_helper(s, "the memory loader"));
        return fail("{}: the memory loader said {:?} instead of {:?}", part, line,
                    memory_loader::kOpenedLine);
    }
    // What it says goes to the sandbox; its stderr is drained here only so that it never
    // waits on a full pipe, then it is reaped. The thread takes no signal: the supervisor's
    // main thread has them all (its signalfd), for the stop and the clean-up they start.
    sigset_t all, before;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &before);
    std::thread([s = std::move(s)]() mutable {
        (void)wait_helper(s, "the memory loader");
    }).detach();
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    return ours;
}

}  // namespace stockade
