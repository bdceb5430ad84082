// The control API without a VM: HTTP parsing and its limits, Firecracker-shaped routes and
// faults against a fake controller, and the server thread on a real Unix socket made by the
// supervisor's ApiSocket (state directory and socket modes, one id per sandbox, an idle
// client closed, nothing left behind).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/fs.h>
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "base/io.hpp"
#include "base/uapi.hpp"
#include "runner/api/api_server.hpp"
#include "runner/api/exec_stream.hpp"
#include "runner/api/http_connection.hpp"
#include "runner/api/routes.hpp"
#include "runner/supervisor/api_socket.hpp"
#include "runner/vmm/seccomp_profiles.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade::api {
namespace {

using nlohmann::json;

HttpConnection::Outcome feed(HttpConnection& c, std::string_view s) {
    return c.feed(std::span(s.data(), s.size()));
}

TEST(ApiHttp, ARequestSplitAcrossReadsAndTwoPipelined) {
    HttpConnection c;
    EXPECT_FALSE(feed(c, "PATCH /vm HTTP/1.1\r\nHost: x\r\nContent-Le").request);
    auto r = feed(c, "ngth: 20\r\n\r\n{\"state\": \"Paused\"}\nGET / HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r.request);
    EXPECT_EQ(r.request->method, "PATCH");
    EXPECT_EQ(r.request->target, "/vm");
    EXPECT_EQ(r.request->body, "{\"state\": \"Paused\"}\n");
    EXPECT_TRUE(r.request->keep_alive);
    EXPECT_GT(c.pending(), 0u);
    auto second = feed(c, "");
    ASSERT_TRUE(second.request);
    EXPECT_EQ(second.request->method, "GET");
    EXPECT_EQ(c.pending(), 0u);
}

TEST(ApiHttp, LimitsAndGarbageAreFaults) {
    {
        HttpConnection c;
        auto r = feed(c, "PUT /actions HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
        ASSERT_TRUE(r.error);
        EXPECT_EQ(r.error->status, 413);
        EXPECT_NE(r.error->body.find("fault_message"), std::string::npos);
    }
    {
        HttpConnection c;
        const std::string big = "GET / HTTP/1.1\r\nX: " + std::string(kMaxHeaderBytes, 'a');
        auto r = feed(c, big);
        ASSERT_TRUE(r.error);
        EXPECT_EQ(r.error->status, 431);
    }
    {
        HttpConnection c;
        auto r = feed(c, "\x16\x03\x01 hello\r\n\r\n");
        ASSERT_TRUE(r.error);
        EXPECT_EQ(r.error->status, 400);
    }
    {
        HttpConnection c;
        auto r = feed(c, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        ASSERT_TRUE(r.request);
        EXPECT_FALSE(r.request->keep_alive);
    }
}

TEST(ApiHttp, ResponsesCarryLengthTypeAndConnection) {
    EXPECT_EQ(serialize({204, ""}, true),
              "HTTP/1.1 204 No Content\r\nServer: stockade\r\nContent-Length: 0\r\nConnection: "
              "keep-alive\r\n\r\n");
    const std::string s = serialize(fault(400, "bad \"x\""), false);
    EXPECT_NE(s.find("HTTP/1.1 400 Bad Request\r\n"), std::string::npos);
    EXPECT_NE(s.find("Content-Type: application/json\r\n"), std::string::npos);
    EXPECT_NE(s.find("Connection: close\r\n"), std::string::npos);
    EXPECT_EQ(json::parse(s.substr(s.find("\r\n\r\n") + 4))["fault_message"], "bad \"x\"");
}

class FakeController : public ApiController {
  public:
    std::string id() const override { return "sb-1"; }
    std::string version() const override { return "9.9"; }
    bool paused() const override { return paused_; }
    Result<> pause() override {
        ++pauses;
        if (refuse) return fail("the sandbox is stopping");
        paused_ = true;
        return {};
    }
    Result<> resume() override {
        ++resumes;
        paused_ = false;
        return {};
    }
    json machine_config() const override { return {{"vcpu_count", 2}, {"mem_size_mib", 256}}; }
    json vm_config() const override { return {{"machine-config", machine_config()}}; }
    json metrics() const override { return {{"vcpu", {{"exit_io", 5}}}}; }
    Result<> flush_metrics() override {
        if (!metrics_file) return fail("no metrics file: start the sandbox with --metrics-path");
        ++flushes;
        return {};
    }
    Result<> start_workload() override {
        if (started) return fail("the workload has already started");
        started = true;
        return {};
    }
    Result<> power_off() override {
        ++power_offs;
        return {};
    }
    Result<> signal_workload(int signal) override {
        signals.push_back(signal);
        return {};
    }
    Result<> exec(guest_control::ExecRequest, UniqueFd&, std::string, std::string) override {
        return std::unexpected(Error{"not here", exec_code});
    }
    int exec_code = 0;  // the errno the refused exec carries
    Result<> resize_exec(std::uint32_t id, guest_control::WindowSize size) override {
        resizes.emplace_back(id, size);
        return {};
    }
    std::vector<std::pair<std::uint32_t, guest_control::WindowSize>> resizes;
    Result<json> snapshot(bool leave_paused, std::vector<UniqueFd> parts) override {
        snapshot_leave_paused = leave_paused;
        snapshot_parts.clear();
        for (auto& fd : parts) {
            struct stat st {};
            snapshot_parts.push_back(::fstat(fd.get(), &st) == 0 ? st.st_ino : 0);
        }
        if (parts.empty()) return fail("no descriptors came with the request");
        return json{{"parts", parts.size()}};
    }
    bool snapshot_leave_paused = false;
    std::vector<ino_t> snapshot_parts;  // inode of each descriptor received
    bool started = true;
    int power_offs = 0;
    std::vector<int> signals;
    bool metrics_file = false;
    int flushes = 0;
    bool paused_ = false, refuse = false;
    int pauses = 0, resumes = 0;
};

Response call(FakeController& c, std::string method, std::string target, std::string body = "") {
    return handle({std::move(method), std::move(target), std::move(body), true}, c).response;
}
std::string fault_of(const Response& r) {
    return json::parse(r.body).value("fault_message", "");
}

TEST(ApiRoutes, InstanceInfoAndConfigurationsHaveFirecrackersShapes) {
    FakeController c;
    auto info = call(c, "GET", "/");
    ASSERT_EQ(info.status, 200);
    EXPECT_EQ(json::parse(info.body), (json{{"app_name", "stockade"},
                                            {"id", "sb-1"},
                                            {"state", "Running"},
                                            {"vmm_version", "9.9"}}));
    EXPECT_EQ(json::parse(call(c, "GET", "/machine-config").body)["vcpu_count"], 2);
    EXPECT_EQ(json::parse(call(c, "GET", "/vm/config").body)["machine-config"]["mem_size_mib"],
              256);
    EXPECT_EQ(json::parse(call(c, "GET", "/metrics?x=1").body)["vcpu"]["exit_io"], 5);
}

TEST(ApiRoutes, FlushMetricsWritesALineOrSaysWhyNot) {
    FakeController c;
    auto none = call(c, "PUT", "/actions", R"({"action_type": "FlushMetrics"})");
    EXPECT_EQ(none.status, 400);
    EXPECT_NE(fault_of(none).find("--metrics-path"), std::string::npos);
    c.metrics_file = true;
    EXPECT_EQ(call(c, "PUT", "/actions", R"({"action_type": "FlushMetrics"})").status, 204);
    EXPECT_EQ(c.flushes, 1);
}

TEST(ApiRoutes, PatchVmPausesAndResumes) {
    FakeController c;
    auto r = call(c, "PATCH", "/vm", R"({"state": "Paused"})");
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.body, "");
    EXPECT_EQ(json::parse(call(c, "GET", "/").body)["state"], "Paused");
    EXPECT_EQ(call(c, "PATCH", "/vm", R"({"state": "Resumed"})").status, 204);
    EXPECT_EQ(c.pauses, 1);
    EXPECT_EQ(c.resumes, 1);
    c.refuse = true;
    auto refused = call(c, "PATCH", "/vm", R"({"state": "Paused"})");
    EXPECT_EQ(refused.status, 400);
    EXPECT_EQ(fault_of(refused), "the sandbox is stopping");
}

TEST(ApiRoutes, BadRequestsGetFaultsThatSayWhy) {
    FakeController c;
    struct Case {
        const char *method, *target, *body, *says;
    };
    for (const Case& k : {
             Case{"PATCH", "/vm", "{not json", "must be a JSON object"},
             Case{"PATCH", "/vm", "[1]", "must be a JSON object"},
             Case{"PATCH", "/vm", R"({"state": "Paused", "x": 1})", "unknown field \"x\""},
             Case{"PATCH", "/vm", R"({"state": "Stopped"})", "not \"Stopped\""},
             Case{"PATCH", "/vm", R"({"state": 1})", "\"Paused\" or \"Resumed\""},
             Case{"PATCH", "/vm", "{}", "\"Paused\" or \"Resumed\""},
             Case{"PUT", "/actions", R"({"action_type": "Explode"})", "unknown action_type"},
             Case{"PUT", "/actions", R"({"action_type": "InstanceStart"})", "already started"},
             Case{"DELETE", "/", "", "Invalid request method and/or path: DELETE /"},
             Case{"GET", "/nope", "", "Invalid request method and/or path: GET /nope"},
         }) {
        auto r = call(c, k.method, k.target, k.body);
        EXPECT_EQ(r.status, 400) << k.method << " " << k.target << " " << k.body;
        EXPECT_NE(fault_of(r).find(k.says), std::string::npos)
            << k.method << " " << k.target << " " << k.body << ": " << fault_of(r);
    }
    EXPECT_EQ(c.pauses + c.resumes, 0);
}

TEST(ApiRoutes, StartSignalsAndPowerOffGoToTheController) {
    FakeController c;
    c.started = false;
    EXPECT_EQ(call(c, "PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204);
    EXPECT_TRUE(c.started);
    EXPECT_EQ(call(c, "PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})").status, 204);
    EXPECT_EQ(c.power_offs, 1);
    for (const char* body :
         {R"({"signal": 9})", R"({"signal": "TERM"})", R"({"signal": "sigusr1"})"})
        EXPECT_EQ(call(c, "PUT", "/kill", body).status, 204) << body;
    EXPECT_EQ(c.signals, (std::vector<int>{9, 15, 10}));
    for (const char* body : {R"({"signal": 0})", R"({"signal": 65})", R"({"signal": "NOPE"})",
                             R"({"signal": 1.5})", R"({})", R"({"signal": 9, "x": 1})"}) {
        auto r = call(c, "PUT", "/kill", body);
        EXPECT_EQ(r.status, 400) << body;
        EXPECT_FALSE(fault_of(r).empty());
    }
    EXPECT_EQ(c.signals.size(), 3u);
}

TEST(ApiRoutes, ExecRequestsAreCheckedBeforeTheConnectionIsHandedOver) {
    FakeController c;
    const auto h = handle({"PUT", "/exec",
                           R"({"cmd": ["sh", "-c", "echo hi"], "env": ["A=1"], "workdir": "/tmp",
                               "stdin": true})",
                           true},
                          c);
    ASSERT_TRUE(h.exec);
    EXPECT_EQ(h.exec->argv, (std::vector<std::string>{"sh", "-c", "echo hi"}));
    EXPECT_EQ(h.exec->env, (std::vector<std::string>{"A=1"}));
    EXPECT_EQ(h.exec->workdir, "/tmp");
    EXPECT_TRUE(h.exec->stdin_open);
    const auto plain = handle({"PUT", "/exec", R"({"cmd": ["true"]})", true}, c);
    ASSERT_TRUE(plain.exec);
    EXPECT_EQ(plain.exec->workdir, "/");
    EXPECT_FALSE(plain.exec->stdin_open);
    EXPECT_FALSE(plain.exec->terminal);
    const auto tty = handle({"PUT", "/exec", R"({"cmd": ["sh"], "tty": true})", true}, c);
    ASSERT_TRUE(tty.exec);
    EXPECT_TRUE(tty.exec->terminal);
    EXPECT_EQ(tty.exec->window, (guest_control::WindowSize{}));
    const auto sized =
        handle({"PUT", "/exec", R"({"cmd": ["sh"], "tty": {"rows": 24, "columns": 80}})", true}, c);
    ASSERT_TRUE(sized.exec);
    EXPECT_TRUE(sized.exec->terminal);
    EXPECT_EQ(sized.exec->window, (guest_control::WindowSize{24, 80}));
    struct Case {
        const char *body, *says;
    };
    for (const Case& k : {
             Case{"{}", "\"cmd\" must name a command"},
             Case{R"({"cmd": []})", "\"cmd\" must name a command"},
             Case{R"({"cmd": [""]})", "\"cmd\" must name a command"},
             Case{R"({"cmd": "ls"})", "array of strings"},
             Case{R"({"cmd": ["ls", 1]})", "array of strings"},
             Case{R"({"cmd": ["ls"], "env": ["NOEQUALS"]})", "not NAME=value"},
             Case{R"({"cmd": ["ls"], "env": ["=x"]})", "not NAME=value"},
             Case{R"({"cmd": ["ls"], "workdir": "tmp"})", "absolute path"},
             Case{R"({"cmd": ["ls"], "stdin": "yes"})", "true or false"},
             Case{R"({"cmd": ["a\u0000b"]})", "NUL"},
             Case{R"({"cmd": ["ls"], "tty": 1})", "\"tty\" must be true, false or"},
             Case{R"({"cmd": ["ls"], "tty": {"rows": 24}})", "\"tty\" must be true, false or"},
             Case{R"({"cmd": ["ls"], "tty": {"rows": 24, "columns": 65536}})",
                  "\"tty\" must be true, false or"},
             Case{R"({"cmd": ["ls"], "tty": {"rows": 1, "columns": 2, "x": 3}})",
                  "\"tty\" must be true, false or"},
             Case{R"({"cmd": ["ls"], "terminal": true})", "unknown field \"terminal\""},
             Case{"not json", "JSON object"},
         }) {
        const auto r = handle({"PUT", "/exec", k.body, true}, c);
        EXPECT_FALSE(r.exec) << k.body;
        EXPECT_EQ(r.response.status, 400) << k.body;
        EXPECT_NE(fault_of(r.response).find(k.says), std::string::npos)
            << k.body << ": " << fault_of(r.response);
    }
    // A request stockade-init would refuse for its size is refused here first.
    const std::string big = R"({"cmd": ["echo", ")" + std::string(70'000, 'x') + R"("]})";
    EXPECT_FALSE(parse_exec_request({"PUT", "/exec", big, true}));
}

// An exec's terminal is resized by its id, which the exec stream's head carries.
TEST(ApiRoutes, AnExecsTerminalIsResizedByItsId) {
    FakeController c;
    EXPECT_EQ(call(c, "PUT", "/exec/resize", R"({"id": 3, "rows": 33, "columns": 77})").status,
              204);
    ASSERT_EQ(c.resizes.size(), 1u);
    EXPECT_EQ(c.resizes[0].first, 3u);
    EXPECT_EQ(c.resizes[0].second, (guest_control::WindowSize{33, 77}));
    for (const char* bad :
         {R"({"id": 0, "rows": 1, "columns": 1})", R"({"id": 1, "rows": 65536, "columns": 1})",
          R"({"id": 1, "rows": -1, "columns": 1})", R"({"id": 1, "rows": 1})",
          R"({"id": "1", "rows": 1, "columns": 1})",
          R"({"id": 4294967296, "rows": 1, "columns": 1})"}) {
        const Response r = call(c, "PUT", "/exec/resize", bad);
        EXPECT_EQ(r.status, 400) << bad;
        EXPECT_NE(fault_of(r).find("\"id\""), std::string::npos) << bad << ": " << fault_of(r);
    }
    EXPECT_EQ(c.resizes.size(), 1u);
    const std::string head = api::with_exec_id(api::exec_response_head(), 42);
    EXPECT_NE(head.find("\r\nStockade-Exec-Id: 42\r\n\r\n"), std::string::npos) << head;
    EXPECT_EQ(head.find("\r\n\r\n"), head.size() - 4) << "one blank line, at the end";
}

// Found by fuzz_api_request: a client's invalid UTF-8 reached a fault message, and the JSON
// serializer threw in the API thread (the sandbox would have aborted).
TEST(ApiRoutes, InvalidUtf8FromTheClientStaysInsideTheFault) {
    FakeController c;
    for (const Request& r :
         {Request{"GET", "/\x9c\xff", "", true}, Request{"PATCH", "/vm", "{\"\xc3\x28\": 1}", true},
          Request{"PATCH", "/vm", "{\"state\": \"\xe2\x82\"}", true}}) {
        const Response out = handle(r, c).response;
        EXPECT_EQ(out.status, 400);
        EXPECT_FALSE(json::parse(out.body, nullptr, false).is_discarded()) << out.body;
    }
}

// A client on the real socket: connect, send, read until the peer closes or `until` appears.
std::string talk(const std::string& path, const std::string& request,
                 const std::string& until = "") {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return "connect failed";
    }
    if (!request.empty()) (void)!::write(fd, request.data(), request.size());
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    ::close(fd);
    return out;
}

TEST(ApiSocket, APolicyGroupMayUseTheSocketButNotReadTheDirectory) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string root = (dir.path / "run").string();
    const gid_t group = ::getgid();  // one this process may give its files to
    auto sock = ApiSocket::create("sb-g", root, group);
    ASSERT_TRUE(sock) << sock.error().message;
    struct stat st {};
    ASSERT_EQ(::stat((root + "/sb-g").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0710u);
    EXPECT_EQ(st.st_gid, group);
    ASSERT_EQ(::stat(sock->path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(st.st_gid, group);
}

TEST(ApiServer, ServesOnTheSupervisorsSocketAndLeavesNothingBehind) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string root = (dir.path / "run").string();
    std::string sock_path, sandbox_dir;
    {
        auto sock = ApiSocket::create("sb-1", root);
        ASSERT_TRUE(sock) << sock.error().message;
        sock_path = sock->path();
        sandbox_dir = root + "/sb-1";
        struct stat st {};
        ASSERT_EQ(::stat(sandbox_dir.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0700u);
        ASSERT_EQ(::stat(sock_path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0600u);
        auto twice = ApiSocket::create("sb-1", root);
        ASSERT_FALSE(twice);
        EXPECT_NE(twice.error().message.find("another sandbox has this id"), std::string::npos);

        FakeController c;
        ApiServerConfig config{sock->take_listener(), &c, {}, std::chrono::milliseconds(300)};
        auto server = ApiServer::start(std::move(config));
        ASSERT_TRUE(server) << server.error().message;
        const std::string got =
            talk(sock_path, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        EXPECT_NE(got.find("HTTP/1.1 200 OK"), std::string::npos) << got;
        EXPECT_NE(got.find("\"id\":\"sb-1\""), std::string::npos) << got;
        const std::string paused = talk(sock_path,
                                        "PATCH /vm HTTP/1.1\r\nContent-Length: "
                                        "18\r\nConnection: close\r\n\r\n{\"state\":\"Paused\"}",
                                        "");
        EXPECT_NE(paused.find("HTTP/1.1 204"), std::string::npos) << paused;
        EXPECT_TRUE(c.paused_);
        // Connects and never sends: closed after the idle timeout, with nothing written.
        EXPECT_EQ(talk(sock_path, ""), "");
        // Garbage: a fault, then the connection closes.
        const std::string bad = talk(sock_path, "HELLO\r\n\r\n");
        EXPECT_NE(bad.find("HTTP/1.1 400"), std::string::npos) << bad;
        EXPECT_NE(bad.find("Connection: close"), std::string::npos) << bad;
    }
    struct stat st {};
    EXPECT_NE(::stat(sock_path.c_str(), &st), 0) << "the socket is removed";
    EXPECT_NE(::stat(sandbox_dir.c_str(), &st), 0) << "the state directory is removed";
}

// An exec the sandbox cannot take yet (its guest's init is not connected: EAGAIN) is a 503,
// which clients ask again; any other refusal is a 400. Either way the connection closes.
TEST(ApiServer, AnExecTheGuestCannotTakeYetIsA503) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    auto sock = ApiSocket::create("sb-e", (dir.path / "run").string());
    ASSERT_TRUE(sock) << sock.error().message;
    FakeController c;
    auto server = ApiServer::start({sock->take_listener(), &c, {}, std::chrono::milliseconds(300)});
    ASSERT_TRUE(server) << server.error().message;
    const std::string body = R"({"cmd": ["true"]})";
    const std::string request =
        fmt::format("PUT /exec HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}", body.size(), body);
    c.exec_code = EAGAIN;
    const std::string later = talk(sock->path(), request);
    EXPECT_NE(later.find("HTTP/1.1 503"), std::string::npos) << later;
    EXPECT_NE(later.find("not here"), std::string::npos) << later;
    EXPECT_NE(later.find("Connection: close"), std::string::npos) << later;
    c.exec_code = 0;
    const std::string refused = talk(sock->path(), request);
    EXPECT_NE(refused.find("HTTP/1.1 400"), std::string::npos) << refused;
}

TEST(ApiRoutes, SnapshotRequestsTakeDescriptorsNotPaths) {
    FakeController c;
    Handled h = handle({"PUT", "/snapshot/create", "{\"leave_paused\": true}", true}, c);
    ASSERT_TRUE(h.snapshot);
    EXPECT_TRUE(h.snapshot->leave_paused);
    h = handle({"PUT", "/snapshot/create", "", true}, c);
    ASSERT_TRUE(h.snapshot);
    EXPECT_FALSE(h.snapshot->leave_paused);
    h = handle(
        {"PUT", "/snapshot/create", "{\"snapshot_path\": \"/x\", \"mem_file_path\": \"/y\"}", true},
        c);
    EXPECT_FALSE(h.snapshot);
    EXPECT_EQ(h.response.status, 400);
    EXPECT_NE(fault_of(h.response).find("opens no paths"), std::string::npos);
    for (const char* body :
         {"{\"leave_paused\": 1}", "{\"snapshot_type\": \"Diff\"}", "{\"x\": 1}", "[]"}) {
        h = handle({"PUT", "/snapshot/create", body, true}, c);
        EXPECT_FALSE(h.snapshot) << body;
        EXPECT_EQ(h.response.status, 400) << body;
    }
    // A load goes to a new sandbox: the answer says how.
    h = handle({"PUT", "/snapshot/load", "{\"snapshot_path\": \"/x\"}", true}, c);
    EXPECT_FALSE(h.snapshot);
    EXPECT_EQ(h.response.status, 400);
    EXPECT_NE(fault_of(h.response).find("stockade create --restore DIR"), std::string::npos)
        << fault_of(h.response);
}

// Sends `request` with `fds` attached (SCM_RIGHTS) and reads the answer.
std::string talk_with_fds(const std::string& path, const std::string& request,
                          const std::vector<int>& fds) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return "";
    }
    auto sent = send_with_fds(fd, request, fds);
    if (!sent || *sent != request.size()) {
        ::close(fd);
        return "";
    }
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return out;
}

TEST(ApiServer, ASnapshotRequestHandsTheDescriptorsItCameWithToTheController) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    auto sock = ApiSocket::create("sb-s", (dir.path / "run").string());
    ASSERT_TRUE(sock) << sock.error().message;
    FakeController c;
    auto server = ApiServer::start({sock->take_listener(), &c, {}, std::chrono::milliseconds(300)});
    ASSERT_TRUE(server) << server.error().message;
    std::vector<int> fds;
    std::vector<ino_t> inodes;
    for (const char* name : {"state", "memory", "disk-vda"}) {
        const std::string p = (dir.path / name).string();
        fds.push_back(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        struct stat st {};
        ASSERT_EQ(::fstat(fds.back(), &st), 0);
        inodes.push_back(st.st_ino);
    }
    const std::string body = "{\"leave_paused\":true}";
    const std::string got = talk_with_fds(
        sock->path(),
        fmt::format("PUT /snapshot/create HTTP/1.1\r\nContent-Length: {}\r\nConnection: "
                    "close\r\n\r\n{}",
                    body.size(), body),
        fds);
    EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
    EXPECT_NE(got.find("\"parts\":3"), std::string::npos) << got;
    EXPECT_EQ(c.snapshot_parts, inodes) << "in the order sent";
    EXPECT_TRUE(c.snapshot_leave_paused);
    // Descriptors sent with some other request are not kept for a later one.
    const std::string other = talk_with_fds(sock->path(),
                                            "GET / HTTP/1.1\r\nHost: x\r\n\r\nPUT /snapshot/create "
                                            "HTTP/1.1\r\nConnection: close\r\n\r\n",
                                            {fds[0]});
    EXPECT_NE(other.find("HTTP/1.1 200"), std::string::npos) << other;
    EXPECT_NE(other.find("HTTP/1.1 400"), std::string::npos) << other;
    EXPECT_TRUE(c.snapshot_parts.empty());
    // Too many: refused, and the connection closes.
    std::vector<int> many(19, fds[0]);
    const std::string refused = talk_with_fds(
        sock->path(), "PUT /snapshot/create HTTP/1.1\r\nConnection: close\r\n\r\n", many);
    EXPECT_NE(refused.find("HTTP/1.1 400"), std::string::npos) << refused;
    EXPECT_NE(refused.find("at most 18 descriptors"), std::string::npos) << refused;
    for (int fd : fds)
        ::close(fd);
}

// The API thread's filter: its sockets come from the supervisor, it controls no device, and
// the only KVM calls it makes hold and restore the guest's clock around a pause.
TEST(ApiServer, TheApiThreadsFilterIsNarrow) {
    const auto p = api_seccomp_profile(policy::SeccompMode::kill);
    const auto names = p.allowed_syscalls();
    for (const char* call :
         {"socket", "bind", "listen", "connect", "open", "openat", "execve", "pread64", "mincore",
          "pwrite64", "ftruncate", "copy_file_range", "newfstatat", "fstat"})
        EXPECT_EQ(std::count(names.begin(), names.end(), call), 0) << call;
    EXPECT_EQ(std::count(names.begin(), names.end(), "accept4"), 1);
    std::vector<std::uint64_t> ioctls;
    for (const auto& i : p.allowed_ioctls())
        ioctls.push_back(i.number);
    std::sort(ioctls.begin(), ioctls.end());
    std::vector<std::uint64_t> want{KVM_GET_CLOCK, KVM_SET_CLOCK};
    std::sort(want.begin(), want.end());
    EXPECT_EQ(ioctls, want);
}

}  // namespace
}  // namespace stockade::api
