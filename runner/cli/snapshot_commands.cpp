#include "runner/cli/snapshot_commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>  // renameat2
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "netsetup/mac.hpp"
#include "policy/selinux_images.hpp"
#include "runner/arch/x86/cpuid.hpp"
#include "runner/cli/api_client.hpp"
#include "runner/cli/exit_status.hpp"
#include "runner/cli/manage.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/registry/blk.hpp"
#include "runner/registry/net.hpp"
#include "runner/supervisor/seal_helper.hpp"
#include "runner/supervisor/snapshot_files.hpp"
#include "runner/supervisor/state_file.hpp"
#include "runner/supervisor/supervisor.hpp"
#include "runner/vmm/machine_state.hpp"
#include "runner/vmm/snapshot_io.hpp"
#include "snapshot/manifest.hpp"

namespace stockade::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string absolute(const std::string& path) {
    std::error_code ec;
    const fs::path p = fs::absolute(path, ec);
    return ec ? path : p.lexically_normal().string();
}

// The CPU a guest of `vcpus` vCPUs sees on this host (x86::filter_cpuid of what KVM
// supports): its vendor and feature words.
Result<std::pair<std::string, x86::CpuFeatures>> guest_cpu_here(std::uint32_t vcpus) {
    const kvm::Kvm kvm = STOCKADE_TRY(kvm::Kvm::open());
    const auto supported = STOCKADE_TRY(kvm.supported_cpuid());
    return std::pair{std::string(x86::vendor_name(x86::cpu_vendor(supported))),
                     x86::guest_cpu_features(x86::filter_cpuid(supported, 0, vcpus))};
}

// The disks of a run's arguments (in disk order; with `writable_only`, the writable ones), as
// absolute paths from `cwd`.
Result<std::vector<std::string>> run_disks(const std::vector<std::string>& run_args,
                                           const std::string& cwd, bool writable_only) {
    auto parsed = parse_run_args(run_args);
    if (!parsed) return std::unexpected(std::move(parsed).error().context("its run arguments"));
    std::vector<std::string> out;
    for (const DiskSpec& d : parsed->spec.device<BlkKind>().disks)
        if (!d.read_only || !writable_only)
            out.push_back(d.path.starts_with('/') || cwd.empty() ? d.path : cwd + "/" + d.path);
    return out;
}

// The names a snapshot directory holds: nothing else is ever removed from one.
std::vector<std::string> part_names() {
    std::vector<std::string> out{"manifest", "manifest.tmp", "state", "memory"};
    for (std::size_t i = 0; i < 16; ++i)
        out.push_back(disk_part_name(i));
    return out;
}

// Removes a snapshot directory (or a partial one): its known entries (by name within the
// directory, never following a link), then the directory if that emptied it; anything else
// in it stays, with the directory.
void remove_snapshot_dir(const std::string& path) {
    UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) return;
    for (const auto& name : part_names())
        (void)::unlinkat(dir.get(), name.c_str(), 0);
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT)
        log::warn("{}: left in place: {}", path, std::strerror(errno));
}

// The directory's last component, without trailing separators ("DIR/" names DIR).
fs::path without_trailing_separator(fs::path p) {
    while (!p.empty() && p.filename().empty() && p.has_parent_path() && p != p.root_path())
        p = p.parent_path();
    return p;
}

// A temporary directory beside `target` (same file system: the rename is atomic), removed
// unless released: .NAME.partial-PID-XXXXXX, locked (flock) while its create runs. One whose
// lock is free was left by a create that was killed, and goes with the next create of NAME.
class PartialDir {
  public:
    static Result<PartialDir> create(const fs::path& target) {
        const std::string prefix = "." + target.filename().string() + ".partial-";
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(target.parent_path(), ec)) {
            const std::string name = e.path().filename().string();
            if (!name.starts_with(prefix) || !e.is_directory(ec) || e.is_symlink(ec)) continue;
            UniqueFd other(
                ::open(e.path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (other && ::flock(other.get(), LOCK_EX | LOCK_NB) == 0)
                remove_snapshot_dir(e.path().string());
        }
        std::string templ =
            (target.parent_path() / fmt::format("{}{}-XXXXXX", prefix, ::getpid())).string();
        {
            // The module's snapshot type (where SELinux is on): the parts made in it inherit it.
            const policy::CreationLabel label(policy::kSnapshotContext);
            if (::mkdtemp(templ.data()) == nullptr)
                return fail_sys(
                    fmt::format("making a temporary directory beside {}", target.string()));
        }
        PartialDir out(templ);
        out.lock_ = UniqueFd(::open(templ.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!out.lock_ || ::flock(out.lock_.get(), LOCK_EX) != 0)
            return fail_sys(fmt::format("locking {}", templ));
        // Another create's clean-up may have taken it between mkdtemp and the lock.
        struct stat held {
        }, now{};
        if (::fstat(out.lock_.get(), &held) != 0 || ::stat(templ.c_str(), &now) != 0 ||
            held.st_ino != now.st_ino || held.st_dev != now.st_dev) {
            out.path_.clear();
            return fail("{}: removed by another create of the same snapshot: try again", templ);
        }
        return out;
    }
    PartialDir(PartialDir&& o) noexcept : path_(std::move(o.path_)), lock_(std::move(o.lock_)) {
        o.path_.clear();
    }
    PartialDir(const PartialDir&) = delete;
    ~PartialDir() {
        if (!path_.empty()) remove_snapshot_dir(path_);
    }
    [[nodiscard]] const std::string& path() const { return path_; }
    void release() { path_.clear(); }

  private:
    explicit PartialDir(std::string p) : path_(std::move(p)) {}
    std::string path_;
    UniqueFd lock_;
};

Result<> fsync_path(const std::string& path) {
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY | O_DIRECTORY));
    if (::fsync(fd.get()) != 0) return fail_sys(fmt::format("fsync {}", path));
    return {};
}

// Whether `dir` holds a snapshot: a manifest that is sealed (snapshot/README.md) or parses.
bool is_snapshot_dir(const fs::path& dir) {
    UniqueFd fd(::open((dir / "manifest").c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd) return false;
    std::string text(kMaxSnapshotManifest, '\0');
    const ssize_t n = ::read(fd.get(), text.data(), text.size());
    if (n <= 0) return false;
    text.resize(static_cast<std::size_t>(n));
    if (text.starts_with(std::string_view("STKSEAL\0", 8))) return true;
    return manifest_from_json(text, "manifest").has_value();
}

// Puts the finished directory `partial` at `target`: a plain rename, or, over a previous
// snapshot, an atomic exchange (whoever looks finds the old one or the new one, whole); the
// old one's parts are then removed. Anything else at `target` is left alone and refused.
Result<> put_in_place(PartialDir& partial, const fs::path& target) {
    std::error_code ec;
    const auto status = fs::symlink_status(target, ec);
    if (fs::exists(status)) {
        const bool dir = fs::is_directory(status);
        if (!dir || (!is_snapshot_dir(target) && !fs::is_empty(target, ec)))
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

// A part being written: the sandbox writes it into a pipe, and this thread writes it into the
// part's file (which only this process holds), sparse. A part that grows past its limit, or a
// create that failed, closes the pipe: the sandbox's writes fail and it is never left blocked.
class PartPipe {
  public:
    using Written = WrittenBytes;
    // At most `limit` bytes are taken: past it the part is refused and the pipe closed (the
    // sandbox's write fails), as on cancel().
    static Result<std::unique_ptr<PartPipe>> start(int file, const std::string& name,
                                                   std::uint64_t limit) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return fail_sys("pipe");
        std::unique_ptr<PartPipe> s(new PartPipe(UniqueFd(p[0]), UniqueFd(p[1])));
        s->cancel_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!s->cancel_) return fail_sys("eventfd");
        (void)::fcntl(p[1], F_SETPIPE_SZ, 1 << 20);  // fewer wake-ups; the default will do
        s->thread_ = std::thread([raw = s.get(), file, name, limit] {
            raw->written_ = raw->drain(file, name, limit);
            raw->read_.reset();  // whatever the sandbox writes now fails (EPIPE)
        });
        return s;
    }
    ~PartPipe() {
        cancel();
        finish_thread();
    }
    [[nodiscard]] int write_end() const { return write_.get(); }
    // Our copy of the write end closed (the sandbox has closed its own): the rest is read
    // and the part finished.
    Result<Written> finish() {
        finish_thread();
        return std::move(written_);
    }
    // The create failed: reading stops now, whatever the sandbox still holds.
    void cancel() {
        const std::uint64_t one = 1;
        if (cancel_) (void)!::write(cancel_.get(), &one, sizeof one);
    }

  private:
    PartPipe(UniqueFd r, UniqueFd w) : read_(std::move(r)), write_(std::move(w)) {}
    void finish_thread() {
        write_.reset();
        if (thread_.joinable()) thread_.join();
    }
    Result<Written> drain(int file, const std::string& name, std::uint64_t limit) {
        SparseFileWriter clear(file);
        std::vector<std::uint8_t> buf(1 << 20);
        std::uint64_t total = 0;
        for (;;) {
            pollfd p[2] = {{read_.get(), POLLIN, 0}, {cancel_.get(), POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return fail_sys("poll");
            }
            if (p[1].revents & POLLIN) return fail("{}: cancelled", name);
            const ssize_t n = ::read(read_.get(), buf.data(), buf.size());
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n < 0) return fail_sys(fmt::format("reading {} from the sandbox", name));
            if (n == 0) break;
            total += static_cast<std::uint64_t>(n);
            if (total > limit)
                return fail("{}: the sandbox sent more than the {} bytes it can be", name, limit);
            const std::span<const std::uint8_t> got(buf.data(), static_cast<std::size_t>(n));
            STOCKADE_TRY_VOID(clear.write(got));
        }
        return clear.finish();
    }
    UniqueFd read_, write_, cancel_;
    std::thread thread_;
    Result<Written> written_ = fail("not finished");
};

int create(const std::string& id, const std::string& dir, bool leave_paused,
           const std::string& seal_key) {
    if (!seal_key.empty())
        if (auto k = check_seal_key(seal_key); !k) {
            log::error("{}", k.error().message);
            return kRefused;
        }
    std::array<std::uint8_t, 16> sid{};
    if (::getrandom(sid.data(), sid.size(), 0) != static_cast<ssize_t>(sid.size())) {
        log::error("{}", fail_sys("getrandom").error().message);
        return kFailed;
    }
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
    auto disks = run_disks(record->run_args, record->run_cwd, true);
    if (!disks) {
        log::error("sandbox {}: {}", id, disks.error().message);
        return kFailed;
    }
    // What each part can be: the CLI takes no more from the sandbox.
    std::vector<std::uint64_t> limits{kMaxSnapshotState, record->memory_mib << 20};
    for (const std::string& image : *disks) {
        struct stat st {};
        if (::stat(image.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
            log::error(
                "sandbox {}: disk {} is not a regular file: only disk images can be "
                "snapshotted",
                id, image);
            return kRefused;
        }
        limits.push_back(static_cast<std::uint64_t>(st.st_size));
    }
    const fs::path target = without_trailing_separator(absolute(dir));
    if (target.filename().empty() || target.filename() == "." || target.filename() == "..") {
        log::error("{}: not a directory name a snapshot can take", dir);
        return kRefused;
    }
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
    // The sandbox gets pipes; each part is written here, sparse, as it arrives, or sealed by
    // stockade-seal (the key never enters the sandbox, nor this process).
    std::vector<std::unique_ptr<PartPipe>> pipes;
    std::vector<std::unique_ptr<SealingPart>> sealing;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (!seal_key.empty()) {
            auto s = SealingPart::start(seal_key, to_hex(sid), names[i], limits[i], files[i].get());
            if (!s) {
                log::error("{}", s.error().message);
                return kFailed;
            }
            fds[i] = (*s)->write_end();
            sealing.push_back(std::move(*s));
            continue;
        }
        auto s = PartPipe::start(files[i].get(), names[i], limits[i]);
        if (!s) {
            log::error("{}", s.error().message);
            return kFailed;
        }
        fds[i] = (*s)->write_end();
        pipes.push_back(std::move(*s));
    }
    const auto t = std::chrono::steady_clock::now();
    auto reply =
        api_request(id, "PUT", "/snapshot/create", json{{"leave_paused", leave_paused}}.dump(),
                    std::chrono::minutes(10), fds);
    // No answer, or a refusal: the sandbox's pipes are cut, whatever it still holds.
    if (!reply || reply->status / 100 != 2) {
        for (auto& p : pipes)
            p->cancel();
        for (auto& p : sealing)
            p->cancel();
    }
    std::vector<PartPipe::Written> written;
    for (std::size_t i = 0; i < pipes.size(); ++i) {
        auto r = pipes[i]->finish();
        if (!r && reply && reply->status / 100 == 2) {
            log::error("writing {}: {}", names[i], r.error().message);
            return kFailed;
        }
        written.push_back(r ? std::move(*r) : PartPipe::Written{});
    }
    std::vector<SealedRecord> records;
    for (std::size_t i = 0; i < sealing.size(); ++i) {
        auto r = sealing[i]->finish();
        if (!r && reply && reply->status / 100 == 2) {
            log::error("sealing {}: {}", names[i], r.error().message);
            return kFailed;
        }
        if (r) {
            written.push_back({r->size, r->size});
            records.push_back(std::move(*r));
        }
    }
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
    if (!answer.is_object() || !answer.contains("memory_bytes") ||
        !answer["memory_bytes"].is_number_unsigned() || !answer.contains("paused") ||
        !answer["paused"].is_boolean()) {
        log::error("sandbox {}: snapshot: an answer that is not the snapshot's (HTTP {}): {}", id,
                   reply->status, reply->body.substr(0, 200));
        return kFailed;
    }

    // What came through the pipes must be this sandbox's: its RAM, its disks' sizes.
    for (std::size_t i = 1; i < names.size(); ++i)
        if (written[i].size != limits[i]) {
            log::error("sandbox {}: snapshot: {} is {} bytes, not {}", id, names[i],
                       written[i].size, limits[i]);
            return kFailed;
        }
    SnapshotManifest m;
    m.id = to_hex(sid);
    m.created = rfc3339_utc(std::chrono::system_clock::now());
    m.source = id;
    m.run_args = record->run_args;
    m.run_cwd = record->run_cwd;
    m.vcpus = record->vcpus;
    m.memory_mib = record->memory_mib;
    m.machine_state_version = kMachineStateVersion;
    if (auto cpu = guest_cpu_here(m.vcpus)) {
        m.guest_cpu_vendor = cpu->first;
        m.guest_cpu = std::move(cpu->second);
    } else {
        log::warn(
            "sandbox {}: snapshot: its guest's CPU features are not recorded (a restore "
            "cannot check them): {}",
            id, cpu.error().message);
    }
    // The digests: of the plaintext, as stockade-seal took it; or read back from the files
    // only this process wrote, after the sandbox has resumed.
    m.sealed = !seal_key.empty();
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (m.sealed) {
            auto sha = parse_sha256_hex(records[i].sha256);
            if (!sha) {
                log::error("sealing {}: stockade-seal gave no digest", names[i]);
                return kFailed;
            }
            m.parts[names[i]] = {records[i].size, *sha};
            continue;
        }
        auto d = snapshot::digest_clear_part(files[i].get(), names[i]);
        if (!d) {
            log::error("{}", d.error().message);
            return kFailed;
        }
        m.parts[names[i]] = *d;
    }
    for (std::size_t i = 0; i < disks->size(); ++i)
        m.disks.push_back({disk_part_name(i), absolute((*disks)[i])});
    for (UniqueFd& f : files)
        if (::fsync(f.get()) != 0) {
            log::error("{}", fail_sys("fsync of a snapshot part").error().message);
            return kFailed;
        }
    files.clear();
    const std::string document = manifest_to_json(m);
    if (m.sealed) {
        auto f = open_file(partial->path() + "/manifest", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
                           0600);
        auto sealed = f ? seal_manifest_file(seal_key, m.id, records, document, f->get())
                        : Result<>(std::unexpected(f.error()));
        if (!sealed) {
            log::error("{}", sealed.error().message);
            return kFailed;
        }
    } else if (auto w = write_file_atomic(partial->path() + "/manifest", document); !w) {
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
    json out = {
        {"snapshot", target.string()},
        {"id", m.id},
        {"source", id},
        {"state_bytes", m.parts["state"].size},
        {"memory_bytes", m.parts["memory"].size},
        {"sealed", m.sealed},
        {"disks", m.disks.size()},
        {"paused", answer["paused"].get<bool>()},
        {"sandbox_timings_us", answer.contains("timings_us") && answer["timings_us"].is_object()
                                   ? answer["timings_us"]
                                   : json::object()},
        {"request_ms", saved_ms}};
    if (!m.sealed) out["memory_data_bytes"] = written[1].data;  // a sealed part is not sparse
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
        auto theirs = run_disks(r.run_args, r.run_cwd, false);
        if (!theirs) continue;
        for (const auto& d : m.disks)
            for (const auto& t : *theirs)
                if (same_file(d.image, t))
                    return fmt::format("{} is a disk of sandbox {}, which is {}", d.image, r.id,
                                       to_string(r.state));
    }
    return std::nullopt;
}

// A guest that checked for a CPU feature once uses it from then on: a host without it (or of
// another vendor) would crash it at some later instruction, so the restore is refused here.
Result<> check_guest_cpu(const SnapshotManifest& m, const std::string& dir) {
    if (m.guest_cpu_vendor.empty()) return {};  // not recorded
    const auto [vendor, features] = STOCKADE_TRY(guest_cpu_here(m.vcpus));
    if (vendor != m.guest_cpu_vendor)
        return fail("{}: the snapshot's guest ran on an {} CPU, this host's is {}", dir,
                    m.guest_cpu_vendor, vendor);
    const auto missing = x86::missing_cpu_features(m.guest_cpu, features);
    if (missing.empty()) return {};
    std::string list;
    for (std::size_t i = 0; i < missing.size() && i < 8; ++i)
        list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += fmt::format(" and {} more", missing.size() - 8);
    return fail(
        "{}: this host's CPU lacks features the snapshot's guest saw and may use (CPUID {}): "
        "restore it on a host with the same CPU features",
        dir, list);
}

struct RestoreOptions {
    std::string dir, id, seal_key;
    bool detach = false, stats = false, console = false, no_verify_memory = false;
    bool paused = false;  // waits for `start` (create --restore)
};

// The restore's spec: the snapshot's manifest read, its images
// free (but for `replacing`'s, a rollback's own sandbox), its run arguments parsed from its
// working directory. Nothing is changed yet.
Result<SandboxSpec> restore_spec(const RestoreOptions& o, const std::string& replacing) {
    const std::string dir = absolute(o.dir);
    const SnapshotManifest m = STOCKADE_TRY(read_snapshot_manifest(dir, o.seal_key));
    STOCKADE_TRY_VOID(check_guest_cpu(m, dir));
    if (auto busy = disk_in_use(m, replacing))
        return fail("{}: {}: restoring would overwrite it", dir, *busy);
    // The run's relative paths are relative to where it was started.
    if (!m.run_cwd.empty() && ::chdir(m.run_cwd.c_str()) != 0)
        return fail("{}: the snapshot's working directory {}: {}", dir, m.run_cwd,
                    std::strerror(errno));
    auto parsed = parse_run_args(m.run_args);
    if (!parsed) return fail("{}: its run arguments: {}", dir, parsed.error().message);
    SandboxSpec spec = std::move(parsed->spec);
    std::vector<std::string> run_args = m.run_args;
    // A MAC stockade derived from the snapshot's sandbox id is the guest's: a restore under
    // another id keeps it (and the host's filter of it), as the guest's driver does, and so
    // does a snapshot of the restored sandbox (its run arguments name the MAC).
    if (auto& net = spec.device<NetKind>(); net && !net->existing_tap && net->netns.empty() &&
                                            !net->netsetup.starts_with("mac=") &&
                                            net->netsetup.find(",mac=") == std::string::npos) {
        const std::string mac = "mac=" + net::derive_mac(m.source).to_string();
        net->netsetup += (net->netsetup.empty() ? "" : ",") + mac;
        for (std::size_t i = 0; i < run_args.size(); ++i) {
            if (run_args[i] == "--") break;
            if (run_args[i] == "--net" && i + 1 < run_args.size())
                run_args[++i] += "," + mac;
            else if (run_args[i].starts_with("--net="))
                run_args[i] += "," + mac;
        }
    }
    spec.id = o.id;
    spec.detach = o.detach;
    // Its workload is where the snapshot left it; with `paused` its vCPUs wait for `start`
    // (or `resume`) before their first instruction.
    spec.wait_for_start = o.paused;
    if (o.paused) spec.detach = true;
    spec.print_stats = spec.print_stats || o.stats;
    spec.show_console = spec.show_console || o.console;
    spec.restore_from = dir;
    spec.verify_memory = !o.no_verify_memory;
    spec.seal_key = o.seal_key;
    spec.restore_snapshot_id = m.id;
    spec.run_args = std::move(run_args);
    spec.run_cwd = m.run_cwd;
    return spec;
}

int run_restored(SandboxSpec spec) {
    if (spec.detach) return run_detached(std::move(spec));
    return run_sandbox(spec);
}

int verify(const std::string& dir_arg, const std::string& seal_key) {
    const std::string dir = absolute(dir_arg);
    auto snap = open_snapshot(dir, true, {}, seal_key);
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
                             {"sealed", snap->manifest.sealed},
                             {"parts", std::move(parts)}}
                            .dump()
                            .c_str());
    return 0;
}

void add_seal_key_option(CLI::App& cmd, std::string& key, const std::string& what) {
    cmd.add_option("--seal-key", key, what)->check(CLI::ExistingFile);
}

void add_restore_options(CLI::App& cmd, RestoreOptions& o) {
    cmd.add_flag("-d,--detach", o.detach, "leave the restored sandbox in the background");
    cmd.add_flag("--stats", o.stats, "print timings and exit counts at the end");
    cmd.add_flag("--console", o.console, "the guest kernel's console on stderr");
    cmd.add_flag("--no-verify-memory", o.no_verify_memory,
                 "do not read the whole memory part before the restore (its SHA-256, or a sealed "
                 "part's every chunk; its length is still checked): the restore then takes the "
                 "same time for any guest size, and a sealed chunk is authenticated as it is "
                 "loaded");
    add_seal_key_option(cmd, o.seal_key, "the sealed snapshot's key file");
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
    std::string create_key;
    add_seal_key_option(*create_cmd, create_key,
                        "seal the snapshot with this key file (32 bytes, or 64 hex digits; "
                        "readable by its owner only): every part encrypted and authenticated "
                        "with AES-256-GCM by stockade-seal, so that restore and verify refuse "
                        "any change and need the key");

    RestoreOptions ro;
    auto* restore_cmd = app.add_subcommand(
        "restore",
        "Start a new sandbox from the snapshot in DIR, jailed and filtered as a booted one: "
        "it goes on where the snapshot was (its writable disks are given back the contents "
        "they had). Its output and exit status are the workload's, as `run`.");
    restore_cmd->add_option("DIR", ro.dir, "the snapshot's directory")->required();
    restore_cmd->add_option("--id", ro.id, "the new sandbox's id (default: a fresh one)");
    restore_cmd->add_flag("--paused", ro.paused,
                          "restore in the background and leave it created, its vCPUs stopped "
                          "before their first instruction, until `stockade start ID` (or "
                          "`resume`): what `stockade create --restore DIR` does");
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
    std::string verify_key;
    add_seal_key_option(*verify_cmd, verify_key, "the sealed snapshot's key file");

    if (auto done = parse_command(app, args, kRefused)) return *done;
    for (std::string* key : {&create_key, &ro.seal_key, &rb.seal_key, &verify_key}) {
        auto absolute_key = seal_key_path(*key);
        if (!absolute_key) {
            log::error("{}", absolute_key.error().message);
            return kRefused;
        }
        *key = std::move(*absolute_key);
    }
    if (create_cmd->parsed()) return create(id, dir, leave_paused, create_key);
    if (restore_cmd->parsed()) {
        auto spec = restore_spec(ro, "");
        if (!spec) {
            log::error("{}", spec.error().message);
            return kRefused;
        }
        return run_restored(std::move(*spec));
    }
    if (verify_cmd->parsed()) return verify(verify_dir, verify_key);
    if (rollback_cmd->parsed()) {
        // Everything that can refuse comes before the sandbox goes: the snapshot whole
        // (every part's digest), its images free but for ID's own, its arguments.
        rb.id = rollback_id;
        rb.detach = true;
        std::vector<std::string> skip;
        if (rb.no_verify_memory) skip.push_back("memory");
        if (auto snap = open_snapshot(absolute(rb.dir), true, skip, rb.seal_key); !snap) {
            log::error("{}", snap.error().message);
            return kRefused;
        }
        auto spec = restore_spec(rb, rollback_id);
        if (!spec) {
            log::error("{}", spec.error().message);
            return kRefused;
        }
        if (const int rm = remove_sandbox(rollback_id, true); rm != 0) return rm;
        return run_restored(std::move(*spec));
    }
    return kRefused;
}

std::optional<std::vector<std::string>> create_restore_args(const std::vector<std::string>& args) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--") break;
        if (a != "--restore" && !a.starts_with("--restore=")) continue;
        std::vector<std::string> out{"restore", "--paused"};
        const bool joined = a != "--restore";
        std::string dir = joined ? a.substr(10) : (i + 1 < args.size() ? args[i + 1] : "");
        const std::size_t end = joined || i + 1 >= args.size() ? i + 1 : i + 2;
        if (!dir.empty()) out.push_back(dir);  // else restore's parser says DIR is required
        out.insert(out.end(), args.begin(), args.begin() + static_cast<std::ptrdiff_t>(i));
        out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(end), args.end());
        return out;
    }
    return std::nullopt;
}

Result<SandboxSpec> snapshot_restore_spec(const std::string& dir, const std::string& id,
                                          bool verify_memory, const std::string& seal_key) {
    RestoreOptions o;
    o.dir = dir;
    o.id = id;
    o.no_verify_memory = !verify_memory;
    o.seal_key = seal_key;
    return restore_spec(o, "");
}

}  // namespace stockade::cli
