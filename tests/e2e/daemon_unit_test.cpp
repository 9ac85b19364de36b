// The daemon's pure parts, without sockets or processes: options and their precedence, the
// loopback rule of --insecure-no-auth, the tokens file, the permissions table, the router, the
// clock and operations routes, RFC 3339 times.
#include "daemon/auth.h"
#include "daemon/config.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/readiness.h"
#include "daemon/router.h"
#include "daemon/routes.h"
#include "ledger/codec.h"

#include "tests/e2e/http_client.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <map>
#include <optional>
#include <thread>

using namespace mqledger;

namespace {

// Config inputs as plain values: the arguments, an environment and the files that exist.
struct inputs {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::map<std::string, std::string> files;

    config_result parse(command_kind c = command_kind::serve) const {
        return parse_config(
            c, args,
            [this](const std::string& name) -> std::optional<std::string> {
                auto it = env.find(name);
                if (it == env.end()) return std::nullopt;
                return it->second;
            },
            [this](const std::string& path) -> std::optional<std::string> {
                auto it = files.find(path);
                if (it == files.end()) return std::nullopt;
                return it->second;
            });
    }
};

config parse_ok(const inputs& in, command_kind c = command_kind::serve) {
    auto r = in.parse(c);
    INFO(r.text);
    REQUIRE(r.outcome == config_result::kind::run);
    return r.cfg;
}

std::string parse_error(const inputs& in, command_kind c = command_kind::serve) {
    auto r = in.parse(c);
    REQUIRE(r.outcome == config_result::kind::usage_error);
    return r.text;
}

boost::json::value body_of(const http::response& r) { return boost::json::parse(r.body); }

std::string code_of(const http::response& r) {
    return std::string(body_of(r).at("error").at("code").as_string());
}

http::request make(std::string method, std::string target, std::string body = {}, std::vector<http::header> h = {}) {
    return http::request{std::move(method), std::move(target), std::move(h), std::move(body)};
}

const std::string digest_a(64, 'a');

} // namespace

// ---------------------------------------------------------------- configuration

TEST_CASE("config: defaults when nothing is given (with --insecure-no-auth)", "[daemon]") {
    const auto cfg = parse_ok({{"--insecure-no-auth"}, {}, {}});
    CHECK(cfg.listen == listen_address{"127.0.0.1", 8080});
    CHECK(cfg.threads == 2);
    CHECK(cfg.body_limit == 65536);
    CHECK(cfg.read_timeout == std::chrono::seconds(30));
    CHECK(cfg.idle_timeout == std::chrono::seconds(60));
    CHECK(cfg.clock == clock_kind::system);
    CHECK_FALSE(cfg.clock_start);
    CHECK(cfg.log == log_format::automatic);
    CHECK(cfg.log_level == "info");
    CHECK(cfg.database_url == default_database_url(command_kind::serve));
}

TEST_CASE("config: the default database suits an installed system, not the build tree", "[daemon]") {
    for (auto c : {command_kind::serve, command_kind::migrate, command_kind::verify, command_kind::rebuild,
                   command_kind::history, command_kind::export_, command_kind::status})
        CHECK(default_database_url(c) == "dbname=mqledger");
    CHECK(parse_ok({{}, {}, {}}, command_kind::migrate).database_url == default_database_url(command_kind::migrate));
}

TEST_CASE("config: environment variable names are MQLEDGER_ + upper case, dashes to underscores", "[daemon]") {
    CHECK(env_name("database-url") == "MQLEDGER_DATABASE_URL");
    CHECK(env_name("listen") == "MQLEDGER_LISTEN");
    CHECK(env_name("insecure-no-auth") == "MQLEDGER_INSECURE_NO_AUTH");
}

TEST_CASE("config: flags > environment > file > defaults", "[daemon]") {
    inputs in;
    in.files["/etc/mq.conf"] = "# comment\nlisten = 127.0.0.1:7001\nthreads = 3\nbody-limit = 1000\n"
                               "database-url = host=file\ninsecure-no-auth = true\n";
    in.args = {"--config", "/etc/mq.conf"};

    SECTION("file over defaults") {
        const auto cfg = parse_ok(in);
        CHECK(cfg.listen.port == 7001);
        CHECK(cfg.threads == 3);
        CHECK(cfg.body_limit == 1000);
        CHECK(cfg.database_url == "host=file");
        CHECK(cfg.insecure_no_auth);
        CHECK(cfg.idle_timeout == std::chrono::seconds(60));   // untouched default
    }
    SECTION("environment over file") {
        in.env["MQLEDGER_LISTEN"] = "127.0.0.1:7002";
        in.env["MQLEDGER_DATABASE_URL"] = "host=env";
        const auto cfg = parse_ok(in);
        CHECK(cfg.listen.port == 7002);
        CHECK(cfg.database_url == "host=env");
        CHECK(cfg.threads == 3);
    }
    SECTION("flags over environment") {
        in.env["MQLEDGER_LISTEN"] = "127.0.0.1:7002";
        in.env["MQLEDGER_THREADS"] = "5";
        in.args.insert(in.args.end(), {"--listen", "127.0.0.1:7003", "--database-url=host=flag"});
        const auto cfg = parse_ok(in);
        CHECK(cfg.listen.port == 7003);
        CHECK(cfg.threads == 5);
        CHECK(cfg.database_url == "host=flag");
    }
    SECTION("an empty environment variable counts as unset") {
        in.env["MQLEDGER_LISTEN"] = "";
        CHECK(parse_ok(in).listen.port == 7001);
    }
    SECTION("the config file may be named by the environment") {
        in.args.clear();
        in.env["MQLEDGER_CONFIG"] = "/etc/mq.conf";
        CHECK(parse_ok(in).listen.port == 7001);
    }
    SECTION("a switch from the environment") {
        in.files["/etc/mq.conf"] = "tokens = /t\n";
        in.env["MQLEDGER_INSECURE_NO_AUTH"] = "1";
        CHECK(parse_error(in).find("exclude each other") != std::string::npos);
    }
}

TEST_CASE("config: the file may hold other commands' keys but no unknown key", "[daemon]") {
    inputs in{{"--config", "f"}, {}, {{"f", "database-url = host=x\nlisten = 127.0.0.1:1\ntokens = t\n"}}};
    CHECK(parse_ok(in, command_kind::migrate).database_url == "host=x");
    in.files["f"] = "database-url = host=x\nlisen = 127.0.0.1:1\n";
    CHECK(parse_error(in, command_kind::migrate).find("unknown key 'lisen'") != std::string::npos);
    in.args = {"--config", "missing"};
    CHECK(parse_error(in, command_kind::migrate).find("cannot read config file 'missing'") != std::string::npos);
}

TEST_CASE("config: bad values are usage errors that name the option", "[daemon]") {
    auto err = [](std::vector<std::string> args) {
        args.push_back("--insecure-no-auth");
        return parse_error({args, {}, {}});
    };
    CHECK(err({"--threads", "0"}).find("--threads") != std::string::npos);
    CHECK(err({"--threads", "abc"}).find("--threads") != std::string::npos);
    CHECK(err({"--threads", "65"}).find("--threads") != std::string::npos);
    CHECK(err({"--body-limit", "-1"}).find("--body-limit") != std::string::npos);
    CHECK(err({"--read-timeout", "0"}).find("--read-timeout") != std::string::npos);
    CHECK(err({"--idle-timeout", "1.5"}).find("--idle-timeout") != std::string::npos);
    CHECK(err({"--clock", "fast"}).find("--clock") != std::string::npos);
    CHECK(err({"--clock-start", "2026-01-01T00:00:00Z"}).find("--clock-start needs --clock manual") != std::string::npos);
    CHECK(err({"--clock", "manual", "--clock-start", "yesterday"}).find("RFC 3339") != std::string::npos);
    CHECK(err({"--log-format", "xml"}).find("--log-format") != std::string::npos);
    CHECK(err({"--log-level", "loud"}).find("--log-level") != std::string::npos);
    CHECK(err({"--listen", "8080"}).find("--listen") != std::string::npos);
    CHECK(err({"--listen", "example.com:80"}).find("--listen") != std::string::npos);
    CHECK(err({"--no-such-option"}).find("no-such-option") != std::string::npos);
    CHECK(err({"stray"}).find("mqledger serve") != std::string::npos);
}

TEST_CASE("config: --tokens is required unless --insecure-no-auth", "[daemon]") {
    CHECK(parse_error({{}, {}, {}}).find("--tokens FILE is required") != std::string::npos);
    CHECK(parse_ok({{"--tokens", "/x"}, {}, {}}).tokens_file == "/x");
}

TEST_CASE("config: --insecure-no-auth is refused unless the listener is loopback", "[daemon]") {
    CHECK(parse_error({{"--insecure-no-auth", "--listen", "0.0.0.0:8080"}, {}, {}}).find("refused") !=
          std::string::npos);
    CHECK(parse_error({{"--insecure-no-auth", "--listen", "[::]:8080"}, {}, {}}).find("refused") != std::string::npos);
    CHECK(parse_ok({{"--insecure-no-auth", "--listen", "[::1]:8080"}, {}, {}}).listen == listen_address{"::1", 8080});
    CHECK(parse_ok({{"--insecure-no-auth", "--listen", "localhost:9"}, {}, {}}).listen.host == "localhost");
    CHECK(parse_ok({{"--insecure-no-auth", "--listen", "127.9.9.9:9"}, {}, {}}).listen.port == 9);
}

TEST_CASE("config: the manual clock and its start", "[daemon]") {
    const auto cfg = parse_ok({{"--insecure-no-auth", "--clock", "manual", "--clock-start", "2026-01-31T08:00:00+08:00"}, {}, {}});
    CHECK(cfg.clock == clock_kind::manual);
    REQUIRE(cfg.clock_start);
    CHECK(codec::format_time(*cfg.clock_start) == "2026-01-31T00:00:00Z");
}

TEST_CASE("config: --help is an outcome with every option, its default and its variable", "[daemon]") {
    const auto r = inputs{{"--help"}, {}, {}}.parse();
    REQUIRE(r.outcome == config_result::kind::help);
    for (const char* s : {"--listen", "127.0.0.1:8080", "MQLEDGER_LISTEN", "--database-url", "MQLEDGER_DATABASE_URL",
                          "--tokens", "--insecure-no-auth", "--clock", "--clock-start", "--threads", "--body-limit",
                          "65536", "--read-timeout", "--idle-timeout", "--log-format", "--log-level", "--config"})
        CHECK(r.text.find(s) != std::string::npos);
}

TEST_CASE("config: history takes an INSTANCE, export a format", "[daemon]") {
    CHECK(parse_ok({{"i-1", "--as-of", "2026-01-01T00:00:00Z"}, {}, {}}, command_kind::history).instance_id == "i-1");
    CHECK(parse_error({{}, {}, {}}, command_kind::history).find("INSTANCE") != std::string::npos);
    CHECK(parse_ok({{"--format", "csv"}, {}, {}}, command_kind::export_).export_format == "csv");
    CHECK(parse_error({{"--format", "xml"}, {}, {}}, command_kind::export_).find("--format") != std::string::npos);
    CHECK(parse_error({{"extra"}, {}, {}}, command_kind::migrate).find("mqledger migrate") != std::string::npos);
}

TEST_CASE("listen addresses: parsing", "[daemon]") {
    CHECK(parse_listen_address("127.0.0.1:8080") == listen_address{"127.0.0.1", 8080});
    CHECK(parse_listen_address("[::1]:8080") == listen_address{"::1", 8080});
    CHECK(parse_listen_address("0.0.0.0:0") == listen_address{"0.0.0.0", 0});
    CHECK_FALSE(parse_listen_address("::1:8080"));
    CHECK_FALSE(parse_listen_address("[::1]8080"));
    CHECK_FALSE(parse_listen_address(":8080"));
    CHECK_FALSE(parse_listen_address("127.0.0.1:"));
    CHECK_FALSE(parse_listen_address("127.0.0.1:65536"));
    CHECK_FALSE(parse_listen_address("127.0.0.1:80x"));
    CHECK_FALSE(parse_listen_address("256.0.0.1:80"));
    CHECK_FALSE(parse_listen_address("db.example:80"));
}

TEST_CASE("listen addresses: loopback is 127.0.0.0/8, ::1 and localhost only", "[daemon]") {
    for (const char* h : {"127.0.0.1", "127.255.0.9", "::1", "localhost", "::ffff:127.0.0.1"})
        CHECK(is_loopback({h, 1}));
    for (const char* h : {"0.0.0.0", "10.0.0.1", "128.0.0.1", "::", "fe80::1", "::ffff:10.0.0.1", "192.168.1.127"})
        CHECK_FALSE(is_loopback({h, 1}));
}

// ---------------------------------------------------------------- tokens and roles

TEST_CASE("tokens: a good file with comments, blank lines and CRLF", "[daemon]") {
    const auto text = "# tokens\n\nadmin alice " + test::sha256_hex("secret-a") + "  # the boss\r\n" +
                      "auditor  carol\t" + test::sha256_hex("secret-c") + "\n   \n";
    const auto table = token_table::parse(text, "tokens.txt");
    REQUIRE(table.entries().size() == 2);
    const auto alice = table.find("secret-a");
    REQUIRE(alice);
    CHECK(alice->who == role::admin);
    CHECK(alice->name == "alice");
    CHECK(table.find("secret-c")->who == role::auditor);
    CHECK_FALSE(table.find("secret-b"));
    CHECK_FALSE(table.find(""));
}

TEST_CASE("tokens: upper-case hex is accepted", "[daemon]") {
    auto hex = test::sha256_hex("t");
    for (auto& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK(token_table::parse("billing bob " + hex, "f").find("t")->who == role::billing);
}

TEST_CASE("tokens: bad lines are refused with the line number", "[daemon]") {
    auto error_of = [](const std::string& text) {
        try {
            (void)token_table::parse(text, "tokens.txt");
        } catch (const tokens_error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_of("# c\nadmin alice\n") == "tokens.txt line 2: expected 'ROLE NAME SHA256_HEX_OF_TOKEN', found 2 field(s)");
    CHECK(error_of("admin a " + digest_a + " extra").find("line 1: expected") != std::string::npos);
    CHECK(error_of("\n\nroot alice " + digest_a).find("line 3: unknown role 'root'") != std::string::npos);
    CHECK(error_of("admin alice abc").find("line 1: the token digest must be 64 hex digits") != std::string::npos);
    CHECK(error_of("admin alice " + digest_a + "a").find("found 65 characters") != std::string::npos);
    CHECK(error_of("admin alice " + std::string(64, 'g')).find("line 1: the token digest is not hexadecimal") !=
          std::string::npos);
    CHECK(error_of("admin a " + digest_a + "\noperator b " + digest_a).find("line 2: the same token digest") !=
          std::string::npos);
}

TEST_CASE("tokens: the store reads Bearer headers and reloads, keeping the old table on error", "[daemon]") {
    test::temp_dir dir;
    const auto path = dir.write("tokens", "operator olga " + test::sha256_hex("tok-1") + "\n");
    token_store store(path.string());
    CHECK(store.authenticate("Bearer tok-1")->name == "olga");
    CHECK(store.authenticate("bearer tok-1")->who == role::operator_);
    CHECK_FALSE(store.authenticate("Bearer tok-2"));
    CHECK_FALSE(store.authenticate("tok-1"));
    CHECK_FALSE(store.authenticate("Basic dG9rLTE="));
    CHECK_FALSE(store.authenticate("Bearer "));
    CHECK_FALSE(store.authenticate(""));

    dir.write("tokens", "billing bill " + test::sha256_hex("tok-2") + "\n");
    store.reload();
    CHECK_FALSE(store.authenticate("Bearer tok-1"));
    CHECK(store.authenticate("Bearer tok-2")->who == role::billing);

    dir.write("tokens", "bogus\n");
    CHECK_THROWS_AS(store.reload(), tokens_error);
    CHECK(store.authenticate("Bearer tok-2"));

    CHECK_THROWS_AS(token_store((dir.path() / "missing").string()), tokens_error);
}

TEST_CASE("permissions: admin everything, operator instances, billing accounts, auditor reads", "[daemon]") {
    using a = route_kind;
    struct row {
        role r;
        bool open, read, instance_action, account_write, admin_only;
    };
    for (const auto& x : {row{role::admin, true, true, true, true, true},
                          row{role::operator_, true, true, true, false, false},
                          row{role::billing, true, true, false, true, false},
                          row{role::auditor, true, true, false, false, false}}) {
        INFO(to_string(x.r));
        CHECK(allowed(x.r, a::open) == x.open);
        CHECK(allowed(x.r, a::read) == x.read);
        CHECK(allowed(x.r, a::instance_action) == x.instance_action);
        CHECK(allowed(x.r, a::account_write) == x.account_write);
        CHECK(allowed(x.r, a::admin_only) == x.admin_only);
    }
    CHECK(parse_role("operator") == role::operator_);
    CHECK_FALSE(parse_role("Admin"));
}

// ---------------------------------------------------------------- router

TEST_CASE("router: path parameters, literals beat parameters, query decoding", "[daemon]") {
    http::router r(nullptr);
    r.add("GET", "/v1/instances/{id}", route_kind::read, [](const http::request_context& c) {
        return http::json_response(200, {{"id", c.param("id")}, {"state", c.query_value("state").value_or("-")}});
    });
    r.add("POST", "/v1/instances/import", route_kind::admin_only,
          [](const http::request_context&) { return http::json_response(201, {{"import", true}}); });
    r.add("POST", "/v1/instances/{id}/actions/{action}", route_kind::instance_action, [](const http::request_context& c) {
        return http::json_response(200, {{"id", c.param("id")}, {"action", c.param("action")}});
    });

    auto res = r.handle(make("GET", "/v1/instances/i%2D1?state=running&x=a+b"));
    CHECK(res.status == 200);
    CHECK(body_of(res).at("id") == "i-1");
    CHECK(body_of(res).at("state") == "running");
    CHECK(res.route == "/v1/instances/{id}");

    res = r.handle(make("POST", "/v1/instances/import", "{}"));
    CHECK(res.status == 201);
    CHECK(res.route == "/v1/instances/import");

    // GET of the literal path still reaches the parameter route: an instance may be called "import".
    CHECK(body_of(r.handle(make("GET", "/v1/instances/import"))).at("id") == "import");

    res = r.handle(make("POST", "/v1/instances/i-1/actions/force-delete"));
    CHECK(body_of(res).at("action") == "force-delete");
    CHECK(res.route == "/v1/instances/{id}/actions/{action}");
}

TEST_CASE("router: a path segment decoding to control bytes or invalid UTF-8 is 400 malformed, never passed on as an id", "[daemon]") {
    http::router r(nullptr);
    r.add("GET", "/v1/instances/{id}", route_kind::read,
          [](const http::request_context& c) { return http::json_response(200, {{"id", c.param("id")}}); });
    for (const char* target : {"/v1/instances/i-1%00x", "/v1/instances/i%0A1", "/v1/instances/i%7F", "/v1/instances/i-%FF",
                               "/v1/instances/i-%C3", "/v1/instances/%C0%AF"}) {
        INFO(target);
        const auto res = r.handle(make("GET", target));
        CHECK(res.status == 400);
        CHECK(code_of(res) == "malformed");
    }
    // Non-ASCII UTF-8 is a legitimate id.
    const auto ok = r.handle(make("GET", "/v1/instances/%C3%A9t%C3%A9"));
    CHECK(ok.status == 200);
    CHECK(body_of(ok).at("id") == "\xc3\xa9t\xc3\xa9");
}

TEST_CASE("router: unknown routes are 404 not_found JSON, wrong methods 405 with Allow", "[daemon]") {
    http::router r(nullptr);
    r.add("GET", "/v1/clock", route_kind::read, [](const http::request_context&) { return http::json_response(200, {}); });
    r.add("POST", "/v1/clock", route_kind::admin_only, [](const http::request_context&) { return http::json_response(200, {}); });

    auto res = r.handle(make("GET", "/v1/nope"));
    CHECK(res.status == 404);
    CHECK(code_of(res) == "not_found");
    CHECK(res.route == "unmatched");
    CHECK(r.handle(make("GET", "/v1/clock/")).status == 404);
    CHECK(r.handle(make("GET", "")).status == 404);

    res = r.handle(make("DELETE", "/v1/clock"));
    CHECK(res.status == 405);
    CHECK(code_of(res) == "method_not_allowed");
    REQUIRE(res.headers.size() == 1);
    CHECK(res.headers[0].name == "Allow");
    CHECK(res.headers[0].value == "GET, POST");
    CHECK(res.route == "/v1/clock");

    CHECK(r.handle(make("GET", "/v1/%zz")).status == 400);
    CHECK(r.route_of("DELETE", "/v1/clock?x=1") == "/v1/clock");
    CHECK(r.route_of("GET", "/v1/x") == "unmatched");
}

TEST_CASE("router: 401 without a valid token, 403 for the wrong role, open routes need none", "[daemon]") {
    test::temp_dir dir;
    const auto path = dir.write("tokens", "auditor audrey " + test::sha256_hex("aud") + "\nadmin ada " +
                                              test::sha256_hex("adm") + "\n");
    token_store tokens(path.string());
    http::router r(&tokens);
    r.add("GET", "/healthz", route_kind::open, [](const http::request_context& c) {
        return http::json_response(200, {{"who", c.who ? c.who->name : "nobody"}});
    });
    r.add("POST", "/v1/accounts", route_kind::account_write, [](const http::request_context& c) {
        return http::json_response(201, {{"actor", c.who->name}});
    });

    CHECK(body_of(r.handle(make("GET", "/healthz"))).at("who") == "nobody");

    auto res = r.handle(make("POST", "/v1/accounts", "{}"));
    CHECK(res.status == 401);
    CHECK(code_of(res) == "unauthenticated");
    CHECK(res.headers.at(0).name == "WWW-Authenticate");
    CHECK(r.handle(make("POST", "/v1/accounts", "{}", {{"Authorization", "Bearer wrong"}})).status == 401);

    res = r.handle(make("POST", "/v1/accounts", "{}", {{"authorization", "Bearer aud"}}));
    CHECK(res.status == 403);
    CHECK(code_of(res) == "forbidden");

    res = r.handle(make("POST", "/v1/accounts", "{}", {{"Authorization", "Bearer adm"}}));
    CHECK(res.status == 201);
    CHECK(body_of(res).at("actor") == "ada");
}

TEST_CASE("router: without tokens every caller is the admin 'anonymous'", "[daemon]") {
    http::router r(nullptr);
    r.add("POST", "/x", route_kind::admin_only,
          [](const http::request_context& c) { return http::json_response(200, {{"actor", c.who->name}}); });
    CHECK(body_of(r.handle(make("POST", "/x"))).at("actor") == "anonymous");
}

TEST_CASE("router: a throwing handler is a 500 internal error, an api_error its own status", "[daemon]") {
    http::router r(nullptr);
    r.add("GET", "/boom", route_kind::read,
          [](const http::request_context&) -> http::response { throw std::runtime_error("disk on fire"); });
    r.add("GET", "/refuse", route_kind::read, [](const http::request_context&) -> http::response {
        throw http::api_error(422, "invalid", "bad time zone", {{"field", "timezone"}});
    });
    r.add("POST", "/json", route_kind::read,
          [](const http::request_context& c) { return http::json_response(200, c.json_body()); });

    auto res = r.handle(make("GET", "/boom"));
    CHECK(res.status == 500);
    CHECK(code_of(res) == "internal");
    CHECK(res.body.find("disk on fire") == std::string::npos);   // not leaked to the client
    CHECK(res.internal_error == "disk on fire");
    CHECK(res.route == "/boom");

    res = r.handle(make("GET", "/refuse"));
    CHECK(res.status == 422);
    CHECK(body_of(res).at("error").at("field") == "timezone");
    CHECK(body_of(res).at("error").at("message") == "bad time zone");

    res = r.handle(make("POST", "/json", "{not json"));
    CHECK(res.status == 400);
    CHECK(code_of(res) == "malformed");
}

TEST_CASE("router: an asynchronous route answers later from another thread, once, with its route label, "
          "it may still refuse before deferring",
          "[daemon]") {
    http::router r(nullptr);
    r.add_async("POST", "/later/{id}", route_kind::read, [](const http::request_context& c, http::responder done) {
        if (c.param("id") == "bad") throw http::api_error(422, "invalid", "bad id", {{"field", "id"}});
        std::thread([id = c.param("id"), done = std::move(done)]() mutable {
            done(http::json_response(200, boost::json::object{{"id", id}}));
        }).detach();
    });

    std::promise<http::response> answered;
    std::atomic<int> calls{0};
    r.handle(make("POST", "/later/x"), [&](http::response&& res) {
        if (++calls == 1) answered.set_value(std::move(res));
    });
    auto res = answered.get_future().get();
    CHECK(res.status == 200);
    CHECK(body_of(res).at("id") == "x");
    CHECK(res.route == "/later/{id}");

    std::optional<http::response> refused;
    r.handle(make("POST", "/later/bad"), [&](http::response&& x) { refused = std::move(x); });
    REQUIRE(refused);   // answered synchronously: the handler threw before deferring
    CHECK(refused->status == 422);
    CHECK(refused->route == "/later/{id}");

    // The synchronous entry point waits for an asynchronous route.
    res = r.handle(make("POST", "/later/y"));
    CHECK(body_of(res).at("id") == "y");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(calls == 1);
}

TEST_CASE("router: malformed patterns and duplicates are refused at registration", "[daemon]") {
    http::router r(nullptr);
    auto fn = [](const http::request_context&) { return http::json_response(200, {}); };
    r.add("GET", "/a/{id}", route_kind::read, fn);
    CHECK_THROWS_AS(r.add("GET", "/a/{id}", route_kind::read, fn), std::invalid_argument);
    CHECK_THROWS_AS(r.add("GET", "a", route_kind::read, fn), std::invalid_argument);
    CHECK_THROWS_AS(r.add("GET", "/a/x{id}", route_kind::read, fn), std::invalid_argument);
}

// ---------------------------------------------------------------- routes

TEST_CASE("clock routes: GET now, POST forward only, malformed bodies", "[daemon]") {
    manual_clock clock(*codec::parse_time("2026-03-01T00:00:00Z"));
    http::router r(nullptr);
    std::vector<time_point> fired_at;
    add_clock_routes(r, clock, [&](time_point t) {
        fired_at.push_back(t);
        return std::size_t{0};
    });

    CHECK(body_of(r.handle(make("GET", "/v1/clock"))).at("now") == "2026-03-01T00:00:00Z");

    auto res = r.handle(make("POST", "/v1/clock", R"({"advance_seconds": 90})"));
    CHECK(res.status == 200);
    CHECK(body_of(res).at("now") == "2026-03-01T00:01:30Z");
    CHECK(body_of(res).at("fired") == 0);
    CHECK(fired_at.size() == 1);

    res = r.handle(make("POST", "/v1/clock", R"({"now": "2026-03-02T08:00:00+08:00"})"));
    CHECK(res.status == 200);
    CHECK(body_of(res).at("now") == "2026-03-02T00:00:00Z");

    res = r.handle(make("POST", "/v1/clock", R"({"now": "2026-03-01T00:00:00Z"})"));
    CHECK(res.status == 422);
    CHECK(code_of(res) == "invalid");
    CHECK(body_of(res).at("error").at("field") == "now");
    CHECK(codec::format_time(clock.now()) == "2026-03-02T00:00:00Z");

    res = r.handle(make("POST", "/v1/clock", R"({"advance_seconds": -1})"));
    CHECK(res.status == 422);
    CHECK(body_of(res).at("error").at("field") == "advance_seconds");

    CHECK(r.handle(make("POST", "/v1/clock", R"({"now": "tomorrow"})")).status == 422);
    for (const char* bad : {"", "nope", "[]", "{}", R"({"now": 5})", R"({"advance_seconds": "5"})",
                            R"({"now": "2026-03-03T00:00:00Z", "advance_seconds": 1})",
                            R"({"advance_second": 60})", R"({"advance_seconds": 60, "fire": false})"}) {
        INFO(bad);
        res = r.handle(make("POST", "/v1/clock", bad));
        CHECK(res.status == 400);
        CHECK(code_of(res) == "malformed");
    }
    CHECK(fired_at.size() == 2);
}

TEST_CASE("ops routes: healthz, readyz from the monitor, metrics with bounded labels", "[daemon]") {
    std::atomic<int> state{static_cast<int>(store::readiness::unreachable)};
    readiness_monitor mon([&] { return static_cast<store::readiness>(state.load()); }, {}, std::chrono::milliseconds(5));
    metrics m("9.9.9");
    http::router r(nullptr);
    add_ops_routes(r, mon, m);

    CHECK(r.handle(make("GET", "/healthz")).body == R"({"status":"ok"})");

    auto res = r.handle(make("GET", "/readyz"));
    CHECK(res.status == 503);
    CHECK(body_of(res).at("error").at("message") == "database not checked yet");

    auto wait_for = [&](std::string_view message) {
        for (int i = 0; i < 400; ++i) {
            const auto b = r.handle(make("GET", "/readyz")).body;
            if (b.find(message) != std::string::npos) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return false;
    };
    mon.start();
    CHECK(wait_for("database unreachable"));
    state = static_cast<int>(store::readiness::not_migrated);
    CHECK(wait_for("database not migrated"));
    state = static_cast<int>(store::readiness::ready);
    CHECK(wait_for(R"({"status":"ready"})"));
    mon.stop();

    m.observe_request("GET", "/v1/instances/{id}", 200, 0.003);
    m.observe_request("BREW", "unmatched", 404, 0.001);
    m.set_database_up(true);
    res = r.handle(make("GET", "/metrics"));
    CHECK(res.content_type.rfind("text/plain", 0) == 0);
    CHECK(res.body.find(R"(mqledger_build_info{version="9.9.9"} 1)") != std::string::npos);
    CHECK(res.body.find(R"(mqledger_http_requests_total{method="GET",route="/v1/instances/{id}",status="200"} 1)") !=
          std::string::npos);
    CHECK(res.body.find(R"(method="other")") != std::string::npos);
    CHECK(res.body.find("mqledger_http_request_duration_seconds_bucket") != std::string::npos);
    CHECK(res.body.find("mqledger_database_up 1") != std::string::npos);
}

// ---------------------------------------------------------------- times and logs

TEST_CASE("RFC 3339: the API parses and formats times with the codec's one implementation", "[daemon]") {
    const auto t = codec::parse_time("2026-11-23T12:00:00Z");
    REQUIRE(t);
    CHECK(codec::format_time(*t) == "2026-11-23T12:00:00Z");
    CHECK(codec::format_time(*codec::parse_time("2026-11-23T20:00:00.5+08:00")) == "2026-11-23T12:00:00.500000Z");
    CHECK(codec::format_time(*codec::parse_time("2026-11-23t12:00:00.1234567z")) == "2026-11-23T12:00:00.123456Z");
    CHECK(codec::format_time(*codec::parse_time("2024-02-29T00:00:00-00:30")) == "2024-02-29T00:30:00Z");
    CHECK(codec::format_time(*codec::parse_time("1969-12-31T23:59:59Z")) == "1969-12-31T23:59:59Z");
    for (const char* bad : {"", "2026-11-23", "2026-11-23T12:00:00", "2026-02-30T00:00:00Z", "2026-11-23T24:00:00Z",
                            "2026-11-23T12:00:00+8:00", "2026-11-23T12:00:00Zjunk", "2026-11-23T12:00:00.Z",
                            " 2026-11-23T12:00:00Z", "2026-13-01T00:00:00Z"}) {
        INFO(bad);
        CHECK_FALSE(codec::parse_time(bad));
    }
}

TEST_CASE("logs: JSON escaping of control characters and quotes", "[daemon]") {
    CHECK(json_escape("a\"b\\c\n\x01") == "a\\\"b\\\\c\\n\\u0001");
}
