#include "runner/cli/snapshot_commands.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "runner/cli/api_client.hpp"
#include "runner/cli/manage.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/registry/blk.hpp"
#include "runner/supervisor/snapshot_files.hpp"
#include "runner/supervisor/state_file.hpp"
#include "runner/supervisor/supervisor.hpp"
#include "runner/vmm/machine_state.hpp"
#include "snapshot/seal_key.hpp"

namespace stockade::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
constexpr int kRefused = 1;
constexpr int kFailed = 125;

// What CLI11 made of the arguments: nullopt to go on, else the status to exit with.
std::optional<int> parse(CLI::App& app, std::span<const std::string> args) {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return e.get_exit_code() == 0 ? rc : kRefused;
    }
    return std::nullopt;
}

std::string absolute(const std::string& path) {
    std::error_code ec;
    const fs::path p = fs::absolute(path, ec);
    return ec ? path : p.lexically_normal().string();
}

// The writable disks of a run's arguments (in disk order), as absolute paths from `cwd`.
Result<std::vector<std::string>> writable_disks(const std::vector<std::string>& run_args,
                                                const std::string& cwd) {
    auto parsed = parse_run_args(run_args);
    if (!parsed) return std::unexpected(std::move(parsed).error().context("its run arguments"));
    std::vector<std::string> out;
    for (const DiskSpec& d : parsed->spec.device<BlkKind>().disks)
        if (!d.read_only)
            out.push_back(d.path.starts_with('/') || cwd.empty() ? d.path : cwd + "/" + d.path);
    return out;
}

// A temporary directory beside `target` (same file system: the rename is atomic), removed
// unless released: .NAME.partial-PID-XXXXXX. One left by a create that was killed (its PID
// runs no more) is removed by the next create of the same target.
class PartialDir {
  public:
    static Result<PartialDir> create(const fs::path& target) {
        const std::string prefix = "." + target.filename().string() + ".partial-";
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(target.parent_path(), ec)) {
            const std::string name = e.path().filename().string();
            if (!name.starts_with(prefix)) continue;
            const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
            if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
                fs::remove_all(e.path(), ec);
        }
        std::string templ =
            (target.parent_path() / fmt::format("{}{}-XXXXXX", prefix, ::getpid())).string();
        if (::mkdtemp(templ.data()) == nullptr)
            return fail_sys(fmt::format("making a temporary directory beside {}", target.string()));
        return PartialDir(templ);
    }
    PartialDir(PartialDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
    PartialDir(const PartialDir&) = delete;
    ~PartialDir() {
        if (path_.empty()) return;
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    [[nodiscard]] const std::string& path() const { return path_; }
    void release() { path_.clear(); }

  private:
    explicit PartialDir(std::string p) : path_(std::move(p)) {}
    std::string path_;
};

Result<> fsync_path(const std::string& path) {
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY | O_DIRECTORY));
    if (::fsync(fd.get()) != 0) return fail_sys(fmt::format("fsync {}", path));
    return {};
}

// Puts the finished directory `partial` at `target`: a plain rename, or, over a previous
// snapshot, an atomic exchange (whoever looks finds the old one or the new one, whole); the
// old one is then removed. Anything else at `target` is left alone and refused.
Result<> put_in_place(PartialDir& partial, const fs::path& target) {
    std::error_code ec;
    const bool exists = fs::exists(fs::symlink_status(target, ec));
    if (exists) {
        const bool snapshot =
            fs::is_directory(fs::symlink_status(target, ec)) && fs::exists(target / "manifest", ec);
        const bool empty =
            fs::is_directory(fs::symlink_status(target, ec)) && fs::is_empty(target, ec);
        if (!snapshot && !empty)
            return fail("{} exists and is not a snapshot: refusing to replace it", target.string());
        if (::renameat2(AT_FDCWD, partial.path().c_str(), AT_FDCWD, target.c_str(),
                        RENAME_EXCHANGE) != 0)
            return fail_sys(fmt::format("putting the snapshot in place at {}", target.string()));
        // `partial` now holds the previous snapshot, and goes.
    } else {
        if (::rename(partial.path().c_str(), target.c_str()) != 0)
            return fail_sys(fmt::format("putting the snapshot in place at {}", target.string()));
        partial.release();
    }
    return fsync_path(target.parent_path().string());
}

int create(const std::string& id, const std::string& dir, bool leave_paused) {
    auto record = read_live_state(state_dir(id));
    if (!record) {
        log::error("sandbox {}: no such sandbox", id);
        return kRefused;
    }
    if (record->state != SandboxState::running && record->state != SandboxState::paused) {
        log::error("sandbox {} is {}: only a running or paused sandbox can be snapshotted", id,
                   to_string(record->state));
        return kRefused;
    }
    if (record->run_args.empty()) {
        log::error(
            "sandbox {}: its state file has no run arguments (started by an older "
            "stockade): it cannot be snapshotted",
            id);
        return kRefused;
    }
    auto disks = writable_disks(record->run_args, record->run_cwd);
    if (!disks) {
        log::error("sandbox {}: {}", id, disks.error().message);
        return kFailed;
    }
    const fs::path target = absolute(dir);
    auto partial = PartialDir::create(target);
    if (!partial) {
        log::error("{}", partial.error().message);
        return kFailed;
    }
    std::vector<std::string> names{"state", "memory"};
    for (std::size_t i = 0; i < disks->size(); ++i)
        names.push_back(disk_part_name(i));
    std::vector<UniqueFd> files;
    std::vector<int> fds;
    for (const auto& name : names) {
        auto f =
            open_file(partial->path() + "/" + name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        if (!f) {
            log::error("{}", f.error().message);
            return kFailed;
        }
        fds.push_back(f->get());
        files.push_back(std::move(*f));
    }
    const auto t = std::chrono::steady_clock::now();
    auto reply =
        api_request(id, "PUT", "/snapshot/create", json{{"leave_paused", leave_paused}}.dump(),
                    std::chrono::minutes(10), fds);
    if (!reply) {
        log::error("{}", reply.error().message);
        return kFailed;
    }
    if (reply->status / 100 != 2) {
        log::error("sandbox {}: snapshot: {}", id, fault_text(*reply));
        return kRefused;
    }
    const auto saved_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
            .count();
    const json answer = json::parse(reply->body, nullptr, false);
    if (!answer.is_object() || !answer.contains("memory_bytes")) {
        log::error("sandbox {}: snapshot: an answer that is not the snapshot's (HTTP {}): {}", id,
                   reply->status, reply->body.substr(0, 200));
        return kFailed;
    }

    SnapshotManifest m;
    std::array<std::uint8_t, 16> raw{};
    if (auto r = snapshot::new_snapshot_id(); r) raw = *r;
    m.id = to_hex(raw);
    m.created = rfc3339_utc(std::chrono::system_clock::now());
    m.source = id;
    m.run_args = record->run_args;
    m.run_cwd = record->run_cwd;
    m.vcpus = record->vcpus;
    m.memory_mib = record->memory_mib;
    m.machine_state_version = kMachineStateVersion;
    // The digests are read back from the files the sandbox wrote, after it has resumed.
    for (std::size_t i = 0; i < names.size(); ++i) {
        auto d = snapshot::digest_clear_part(files[i].get(), names[i]);
        if (!d) {
            log::error("{}", d.error().message);
            return kFailed;
        }
        m.parts[names[i]] = *d;
    }
    for (std::size_t i = 0; i < disks->size(); ++i)
        m.disks.push_back({disk_part_name(i), absolute((*disks)[i])});
    files.clear();
    if (auto w = write_file_atomic(partial->path() + "/manifest", manifest_to_json(m)); !w) {
        log::error("{}", w.error().message);
        return kFailed;
    }
    if (auto s = fsync_path(partial->path()); !s) {
        log::error("{}", s.error().message);
        return kFailed;
    }
    if (auto placed = put_in_place(*partial, target); !placed) {
        log::error("{}", placed.error().message);
        return kFailed;
    }
    json out = {{"snapshot", target.string()},
                {"id", m.id},
                {"source", id},
                {"state_bytes", m.parts["state"].size},
                {"memory_bytes", m.parts["memory"].size},
                {"memory_data_bytes", answer.value("memory_data_bytes", json())},
                {"disks", m.disks.size()},
                {"paused", answer.value("paused", false)},
                {"sandbox_timings_us", answer.value("timings_us", json::object())},
                {"request_ms", saved_ms}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
}

// A writable disk of the snapshot that a live sandbox uses now: restoring would overwrite it
// under that sandbox.
std::optional<std::string> disk_in_use(const SnapshotManifest& m, const std::string& except_id) {
    auto same_file = [](const std::string& a, const std::string& b) {
        struct stat sa {
        }, sb{};
        return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 &&
               sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    };
    for (const StateRecord& r : all_sandboxes()) {
        if (r.state == SandboxState::stopped || r.id == except_id) continue;
        auto theirs = writable_disks(r.run_args, r.run_cwd);
        if (!theirs) continue;
        for (const auto& d : m.disks)
            for (const auto& t : *theirs)
                if (same_file(d.image, t))
                    return fmt::format("{} is a writable disk of sandbox {}, which is {}", d.image,
                                       r.id, to_string(r.state));
    }
    return std::nullopt;
}

struct RestoreOptions {
    std::string dir, id;
    bool detach = false, stats = false, console = false, no_verify_memory = false;
};

int restore(const RestoreOptions& o, const std::string& replacing = "") {
    const std::string dir = absolute(o.dir);
    auto text = read_text_file(dir + "/manifest", kMaxSnapshotManifest);
    if (!text) {
        log::error("{}: not a complete snapshot (no manifest): {}", dir, text.error().message);
        return kRefused;
    }
    auto m = manifest_from_json(*text, dir + "/manifest");
    if (!m) {
        log::error("{}", m.error().message);
        return kRefused;
    }
    if (auto busy = disk_in_use(*m, replacing)) {
        log::error("{}: {}: restoring would overwrite it", dir, *busy);
        return kRefused;
    }
    // The run's relative paths are relative to where it was started.
    if (!m->run_cwd.empty() && ::chdir(m->run_cwd.c_str()) != 0) {
        log::error("{}: the snapshot's working directory {}: {}", dir, m->run_cwd,
                   std::strerror(errno));
        return kRefused;
    }
    auto parsed = parse_run_args(m->run_args);
    if (!parsed) {
        log::error("{}: its run arguments: {}", dir, parsed.error().message);
        return kRefused;
    }
    SandboxSpec spec = std::move(parsed->spec);
    spec.id = o.id;
    spec.detach = o.detach;
    spec.wait_for_start = false;  // its workload is where the snapshot left it
    spec.print_stats = spec.print_stats || o.stats;
    spec.show_console = spec.show_console || o.console;
    spec.restore_from = dir;
    spec.verify_memory = !o.no_verify_memory;
    spec.run_args = m->run_args;
    spec.run_cwd = m->run_cwd;
    if (spec.detach) return run_detached(std::move(spec));
    return run_sandbox(spec);
}

int verify(const std::string& dir_arg) {
    const std::string dir = absolute(dir_arg);
    auto snap = open_snapshot(dir, true);
    if (!snap) {
        log::error("{}", snap.error().message);
        std::printf("%s\n",
                    json{{"snapshot", dir}, {"valid", false}, {"error", snap.error().message}}
                        .dump()
                        .c_str());
        return kRefused;
    }
    json parts = json::object();
    for (const auto& [name, d] : snap->manifest.parts)
        parts[name] = {{"bytes", d.size}, {"sha256", to_hex(d.sha256)}};
    std::printf("%s\n", json{{"snapshot", dir},
                             {"valid", true},
                             {"id", snap->manifest.id},
                             {"source", snap->manifest.source},
                             {"created", snap->manifest.created},
                             {"sealed", false},
                             {"parts", std::move(parts)}}
                            .dump()
                            .c_str());
    return 0;
}

void add_restore_options(CLI::App& cmd, RestoreOptions& o) {
    cmd.add_flag("-d,--detach", o.detach, "leave the restored sandbox in the background");
    cmd.add_flag("--stats", o.stats, "print timings and exit counts at the end");
    cmd.add_flag("--console", o.console, "the guest kernel's console on stderr");
    cmd.add_flag("--no-verify-memory", o.no_verify_memory,
                 "do not read the whole memory part for its SHA-256 before the restore (its "
                 "length is still checked): the restore then takes the same time for any guest "
                 "size");
}

}  // namespace

int snapshot_cli(std::span<const std::string> args) {
    CLI::App app{
        "Snapshots: save a running sandbox (memory, vCPUs, devices, disks) and restore "
        "it, here or as a new sandbox",
        "stockade snapshot"};
    app.require_subcommand(1);
    std::string id, dir;
    bool leave_paused = false;
    auto* create_cmd = app.add_subcommand(
        "create",
        "Save sandbox ID into directory DIR: it is paused, saved and resumed (--leave-paused: "
        "it stays paused). DIR is written beside itself and renamed into place when complete; "
        "a previous snapshot there is replaced atomically. Prints JSON.");
    create_cmd->add_option("ID", id, "the sandbox")->required();
    create_cmd->add_option("DIR", dir, "the snapshot's directory")->required();
    create_cmd->add_flag("--leave-paused", leave_paused, "do not resume the sandbox afterwards");

    RestoreOptions ro;
    auto* restore_cmd = app.add_subcommand(
        "restore",
        "Start a new sandbox from the snapshot in DIR, jailed and filtered as a booted one: "
        "it goes on where the snapshot was (its writable disks are given back the contents "
        "they had). Its output and exit status are the workload's, as `run`.");
    restore_cmd->add_option("DIR", ro.dir, "the snapshot's directory")->required();
    restore_cmd->add_option("--id", ro.id, "the new sandbox's id (default: a fresh one)");
    add_restore_options(*restore_cmd, ro);

    std::string rollback_id;
    RestoreOptions rb;
    auto* rollback_cmd = app.add_subcommand(
        "rollback",
        "Replace running sandbox ID by the snapshot in DIR (same id): ID is stopped and "
        "removed, its disks are given the snapshot's contents, and it is restored in the "
        "background.");
    rollback_cmd->add_option("ID", rollback_id, "the sandbox")->required();
    rollback_cmd->add_option("DIR", rb.dir, "the snapshot's directory")->required();
    add_restore_options(*rollback_cmd, rb);

    std::string verify_dir;
    auto* verify_cmd = app.add_subcommand(
        "verify",
        "Check the snapshot in DIR without running it: complete, every part's length and "
        "SHA-256 as its manifest says. Prints JSON; exits 1 when it does not verify.");
    verify_cmd->add_option("DIR", verify_dir, "the snapshot's directory")->required();

    if (auto done = parse(app, args)) return *done;
    if (create_cmd->parsed()) return create(id, dir, leave_paused);
    if (restore_cmd->parsed()) return restore(ro);
    if (verify_cmd->parsed()) return verify(verify_dir);
    if (rollback_cmd->parsed()) {
        // Checked before the sandbox goes: a snapshot that cannot be restored leaves it be.
        if (auto snap = open_snapshot(absolute(rb.dir), true); !snap) {
            log::error("{}", snap.error().message);
            return kRefused;
        }
        if (const int rm = remove_sandbox(rollback_id, true); rm != 0) return rm;
        rb.id = rollback_id;
        rb.detach = true;
        return restore(rb, rollback_id);
    }
    return kRefused;
}

}  // namespace stockade::cli
