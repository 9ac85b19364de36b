// API.md "Accounts", "Instances", "Ledger": every route that reads or writes the ledger. Handlers
// parse and validate on the I/O thread, then hand the blocking part (database reads, waiting for
// the group commit) to the worker pool and answer from there.
#include "daemon/api_parse.h"
#include "daemon/engine.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/routes.h"
#include "daemon/transparency.h"
#include "daemon/views.h"

#include "ledger/codec.h"
#include "ledger/store/digest.h"
#include "ledger/store/hash_chain.h"
#include "ledger/store/tree_store.h"
#include "projections/as_of.h"
#include "projections/projector.h"
#include "projections/queries.h"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <random>

namespace mqledger {
namespace json = boost::json;
namespace cmd = commands;
using http::api_error;

namespace {

struct services {
    engine& eng;
    db_pool& reads;
    run_blocking_fn run;
    const mqledger::clock& clk;
};

std::string random_hex(std::size_t bytes) {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    std::vector<unsigned char> raw(bytes);
    for (auto& b : raw) b = static_cast<unsigned char>(gen() & 0xff);
    return store::to_hex(raw.data(), raw.size());
}

// Idempotency-Key, If-Match, the actor and a correlation id from the request.
request_meta meta_of(const http::request_context& ctx) {
    request_meta m;
    m.actor = ctx.who ? ctx.who->name : "anonymous";
    if (const auto k = ctx.req.header_value("Idempotency-Key"); !k.empty()) {
        if (k.size() > 256) throw api_error(400, "malformed", "Idempotency-Key is longer than 256 bytes");
        for (unsigned char c : k)
            if (c < 0x20 || c >= 0x7f) throw api_error(400, "malformed", "Idempotency-Key must be printable ASCII");
        m.idempotency_key = std::string(k);
    }
    if (auto im = ctx.req.header_value("If-Match"); !im.empty()) {
        if (im.starts_with("W/")) im.remove_prefix(2);
        if (im.size() >= 2 && im.front() == '"' && im.back() == '"') im = im.substr(1, im.size() - 2);
        std::int64_t v = 0;
        const auto [p, ec] = std::from_chars(im.data(), im.data() + im.size(), v);
        if (ec != std::errc{} || p != im.data() + im.size() || v < 0)
            throw api_error(400, "malformed", "If-Match must be a version number like \"7\"");
        m.if_match = v;
    }
    const auto corr = ctx.req.header_value("X-Correlation-Id");
    if (!corr.empty()) {
        if (corr.size() > 128) throw api_error(400, "malformed", "X-Correlation-Id is longer than 128 bytes");
        for (unsigned char c : corr)
            if (c < 0x20 || c >= 0x7f) throw api_error(400, "malformed", "X-Correlation-Id must be printable ASCII");
    }
    m.correlation_id = corr.empty() ? random_hex(16) : std::string(corr);
    // The caller is part of "the same request": a key repeated by another token is refused
    // (422) instead of answering it the first caller's response.
    m.fingerprint = store::sha256_hex(m.actor + "\n" + ctx.req.method + " " + std::string(ctx.path) + "\n" + ctx.req.body);
    return m;
}

http::response refusal_response(const refusal& r) {
    switch (r.code) {
    case refusal_code::invalid_transition: {
        json::array actions;
        for (const auto& a : r.allowed_actions) actions.emplace_back(a);
        return http::error_response(409, "invalid_transition", r.message,
                                    {{"state", to_string(r.current)}, {"allowed_actions", std::move(actions)}});
    }
    case refusal_code::insufficient_balance:
        return http::error_response(402, "insufficient_balance", r.message,
                                    {{"balance", r.balance}, {"required", r.required}});
    case refusal_code::invalid: return http::error_response(422, "invalid", r.message, {{"field", r.field}});
    case refusal_code::conflict: return http::error_response(409, "conflict", r.message, {{"reason", r.reason}});
    case refusal_code::not_found: return http::error_response(404, "not_found", r.message);
    }
    return http::error_response(500, "internal", "unknown refusal");
}

http::response unavailable_response(const std::string& message) {
    log_line(log_level::warn, "database unavailable", {{"error", message}});
    // A connection lost after COMMIT was sent: the command may have been written.
    if (message.find("outcome is unknown") != std::string::npos)
        return http::error_response(503, "unavailable",
                                    "database connection lost while committing; the command may have been written: "
                                    "retry with the same Idempotency-Key");
    return http::error_response(503, "unavailable", "database unavailable; nothing was written");
}

http::response overloaded_response(const std::string& message) {
    log_line(log_level::warn, "writer queue full", {{"error", message}});
    auto r = http::error_response(503, "overloaded", "too many commands waiting to be written; nothing was written, "
                                                     "retry after the time in Retry-After");
    r.headers.push_back({"Retry-After", "1"});
    return r;
}

// The answer to a command: the target's view, or the documented error.
http::response outcome_response(const command_outcome& o, int ok_status, const engine& eng, const std::string& id,
                                time_point now) {
    switch (o.kind) {
    case outcome_kind::ok: break;
    case outcome_kind::refused: return refusal_response(*o.refused);
    case outcome_kind::version_mismatch:
        return http::error_response(412, "version_mismatch", o.message, {{"version", o.actual_version}});
    case outcome_kind::idempotency_mismatch:
        return http::error_response(422, "invalid", o.message, {{"field", "Idempotency-Key"}});
    case outcome_kind::unavailable: return unavailable_response(o.message);
    case outcome_kind::overloaded: return overloaded_response(o.message);
    case outcome_kind::internal: {
        auto r = http::error_response(500, "internal", "internal error; nothing was written");
        r.internal_error = o.message;
        return r;
    }
    }
    if (o.account) return http::json_response(ok_status, views::account(id, *o.account));
    if (o.instance && o.instance->exists) {
        // A response shows the instance as of its command (so a replay answers byte for byte
        // the same): the command's events are effective at the time it was decided.
        const auto at = (o.replayed || !o.written.empty()) ? o.instance->last_effective_at : now;
        return http::json_response(
            ok_status, views::instance(*o.instance, projections::policy_of(*o.instance, eng.policies()), at));
    }
    return http::error_response(404, "not_found", "no such instance or account");
}

// Runs `fn` on a worker: whatever it throws becomes a 500 (a worker thread must never let an
// exception escape: the pool would terminate the process).
template <typename Fn>
http::response guarded(Fn&& fn) noexcept {
    try {
        return fn();
    } catch (const std::exception& e) {
        auto r = http::error_response(500, "internal", "internal error");
        r.internal_error = e.what();
        return r;
    } catch (...) {
        auto r = http::error_response(500, "internal", "internal error");
        r.internal_error = "unknown exception";
        return r;
    }
}

// Runs a command on the workers and answers with the target's view or the documented error.
void command(const services& s, const http::request_context& ctx, bool account_target, std::string id,
             cmd::command c, int ok_status, http::responder done) {
    auto meta = meta_of(ctx);
    s.run([s, account_target, id = std::move(id), c = std::move(c), meta = std::move(meta), ok_status,
           done = std::move(done)]() mutable {
        done(guarded([&] {
            const auto o = account_target ? s.eng.execute_account(id, c, meta) : s.eng.execute_instance(id, c, meta);
            return outcome_response(o, ok_status, s.eng, id, s.clk.now());
        }));
    });
}

void run_instance_command(const services& s, const http::request_context& ctx, std::string id, cmd::command c,
                      int ok_status, http::responder done) {
    command(s, ctx, false, std::move(id), std::move(c), ok_status, std::move(done));
}

void run_account_command(const services& s, const http::request_context& ctx, std::string id, cmd::command c,
                     int ok_status, http::responder done) {
    command(s, ctx, true, std::move(id), std::move(c), ok_status, std::move(done));
}

// Runs a read on the worker pool; database failures answer 503.
template <typename Fn>
void read(const services& s, http::responder done, Fn fn) {
    s.run([s, done = std::move(done), fn = std::move(fn)]() mutable {
        http::response r;
        try {
            r = s.reads.with([&](pqxx::connection& c) { return fn(c); });
        } catch (const api_error& e) {
            r = http::error_response(e.status, e.code, e.what(), e.extra);
        } catch (const pqxx::broken_connection& e) {
            r = unavailable_response(e.what());
        } catch (const pqxx::sql_error& e) {
            r = unavailable_response(e.what());
        } catch (const pqxx::failure& e) {
            r = unavailable_response(e.what());
        } catch (const std::exception& e) {
            r = http::error_response(500, "internal", "internal error");
            r.internal_error = e.what();
        } catch (...) {
            r = http::error_response(500, "internal", "internal error");
            r.internal_error = "unknown exception";
        }
        done(std::move(r));
    });
}

// An id from the path: one that cannot be valid names nothing.
std::string path_id(const http::request_context& ctx, std::string_view what) {
    auto id = ctx.param("id");
    try {
        api::check_id(id, "id");
    } catch (const api_error&) {
        throw api_error(404, "not_found", "no such " + std::string(what));
    }
    return id;
}

std::int64_t query_int(const http::request_context& ctx, std::string_view key, std::int64_t fallback,
                       std::int64_t min, std::int64_t max) {
    const auto v = ctx.query_value(key);
    if (!v) return fallback;
    std::int64_t n = 0;
    const auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc{} || p != v->data() + v->size() || n < min || n > max)
        throw api_error(422, "invalid",
                        std::string(key) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max),
                        {{"field", key}});
    return n;
}

std::optional<time_point> query_time(const http::request_context& ctx, std::string_view key) {
    const auto v = ctx.query_value(key);
    if (!v) return std::nullopt;
    const auto t = codec::parse_time(*v);
    if (!t) throw api_error(422, "invalid", std::string(key) + " is not an RFC 3339 time", {{"field", key}});
    return t;
}

json::object items(json::array a) { return json::object{{"items", std::move(a)}}; }

// ---- the add-funds action (K: "Renew or add funds") ----

// An earlier request with this Idempotency-Key: whether there is one, and when the payment in
// its append took effect (its account.funds_added), if it made one.
struct earlier_request {
    std::optional<time_point> paid_at;
};

std::optional<earlier_request> earlier_use(db_pool& reads, const std::string& key) {
    return reads.with([&](pqxx::connection& c) -> std::optional<earlier_request> {
        pqxx::read_transaction tx(c);
        const auto first = store::find_keyed_append(tx, key);
        if (!first) return std::nullopt;
        earlier_request out;
        for (const auto& e : store::read_all(tx, first->first_position - 1, first->count))
            if (e.type == "account.funds_added") {
                out.paid_at = e.effective_at;
                break;
            }
        return out;
    });
}

// The instance as it was right after the payment at `paid_at` (folded from its stream, so a
// repeat with the same Idempotency-Key answers the same view, whatever happened since).
http::response instance_after_payment(const services& s, const std::string& id, time_point paid_at) {
    return s.reads.with([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c);
        auto st = projections::instance_as_of(tx, id, paid_at, s.eng.policies());
        st.id = id;
        if (!st.exists) return http::error_response(404, "not_found", "no such instance");
        return http::json_response(200, views::instance(st, projections::policy_of(st, s.eng.policies()), paid_at));
    });
}

// POST /v1/instances/{id}/actions/add-funds: the payment K's Actions column offers an expired
// pay-as-you-go/serverless instance ("Renew or add funds"; the views list `add-funds` in every
// overdue payg state). It is `POST /v1/accounts/{account}/funds` on the instance's account, so
// it needs the role that may add funds (billing or admin), and a payment that clears what the
// account owes restores the instance in the same append (RULES.md "Accounts and payments").
// Like every action it is refused (409) unless the instance lists it now, and If-Match names
// the instance's version; a repeat with the same Idempotency-Key skips both checks and replays.
// Answers the instance after the payment.
http::response pay_for_instance(const services& s, const std::string& id, const cmd::add_funds& funds,
                                request_meta meta) {
    const auto earlier = meta.idempotency_key ? earlier_use(s.reads, *meta.idempotency_key) : std::nullopt;
    const auto inst = s.eng.load_instance(id);
    if (!inst.exists) return http::error_response(404, "not_found", "no such instance");
    if (!earlier) {
        if (meta.if_match && *meta.if_match != inst.version)
            return http::error_response(412, "version_mismatch",
                                        "If-Match is " + std::to_string(*meta.if_match) + "; the version is " +
                                            std::to_string(inst.version),
                                        {{"version", inst.version}});
        const auto allowed = allowed_actions(inst, projections::policy_of(inst, s.eng.policies()), s.clk.now());
        if (std::find(allowed.begin(), allowed.end(), action::add_funds) == allowed.end()) {
            refusal r;
            r.code = refusal_code::invalid_transition;
            r.message = "add-funds is not available in this state";
            r.current = inst.current;
            r.allowed_actions = allowed;
            return refusal_response(r);
        }
    }
    // The account's own version is not what If-Match named: checked above.
    meta.if_match.reset();
    const auto o = s.eng.execute_account(inst.account_id, funds, meta);
    if (o.kind != outcome_kind::ok) return outcome_response(o, 200, s.eng, inst.account_id, s.clk.now());
    std::optional<time_point> paid_at;
    for (const auto& e : o.written)
        if (e.type == "account.funds_added") paid_at = e.effective_at;
    if (!paid_at && meta.idempotency_key)   // a replay: the first request's payment
        if (const auto first = earlier_use(s.reads, *meta.idempotency_key)) paid_at = first->paid_at;
    if (!paid_at) {
        auto r = http::error_response(500, "internal", "the payment could not be read back");
        r.internal_error = "add-funds: no account.funds_added for instance " + id;
        return r;
    }
    return instance_after_payment(s, id, *paid_at);
}

json::array hex_list(const std::vector<merkle::hash>& hashes) {
    json::array out;
    out.reserve(hashes.size());
    for (const auto& h : hashes) out.emplace_back(merkle::to_hex(h));
    return out;
}

// The inclusion proofs of `positions` in the tree of `tree_size` (all checked by the caller),
// from one read of the tiles they need.
std::vector<json::object> inclusions_of(pqxx::transaction_base& tx, const std::vector<std::int64_t>& positions,
                                        std::int64_t tree_size, store::tile_cache* tiles) {
    const auto proofs = store::with_tiles(
        tx,
        [&](const merkle::tree_reader& t) {
            std::vector<std::pair<merkle::hash, std::vector<merkle::hash>>> out;
            out.reserve(positions.size());
            for (const auto p : positions) out.emplace_back(t.subtree(0, p - 1), t.inclusion_proof(p - 1, tree_size));
            return out;
        },
        tiles);
    std::vector<json::object> out;
    out.reserve(positions.size());
    for (std::size_t i = 0; i < positions.size(); ++i)
        out.push_back(json::object{{"position", positions[i]},
                                   {"leaf_index", positions[i] - 1},
                                   {"tree_size", tree_size},
                                   {"leaf_hash", merkle::to_hex(proofs[i].first)},
                                   {"hashes", hex_list(proofs[i].second)}});
    return out;
}

} // namespace

void add_transparency_routes(http::router& r, transparency& t, db_pool& reads, run_blocking_fn run, metrics& m) {
    auto run_read = [&reads, run](http::responder done, auto fn) {
        run([&reads, done = std::move(done), fn = std::move(fn)]() mutable {
            http::response res;
            try {
                res = reads.with([&](pqxx::connection& c) { return fn(c); });
            } catch (const api_error& e) {
                res = http::error_response(e.status, e.code, e.what(), e.extra);
            } catch (const pqxx::failure& e) {
                res = unavailable_response(e.what());
            } catch (const std::exception& e) {
                res = http::error_response(500, "internal", "internal error");
                res.internal_error = e.what();
            }
            done(std::move(res));
        });
    };
    const auto max = std::numeric_limits<std::int64_t>::max();

    r.add_async("GET", "/v1/ledger/checkpoint", route_kind::read,
                [run_read, max](const http::request_context& ctx, http::responder done) {
                    const auto size = ctx.query_value("tree_size") ? std::optional(query_int(ctx, "tree_size", 0, 0, max))
                                                                   : std::nullopt;
                    run_read(std::move(done), [size](pqxx::connection& c) {
                        pqxx::read_transaction tx(c);
                        const auto cp = size ? store::checkpoint_of_size(tx, *size) : store::latest_checkpoint(tx);
                        if (!cp)
                            throw api_error(404, "not_found",
                                            size ? "no checkpoint of that tree size"
                                                 : "no checkpoint yet (the daemon signs them with --digest-key)");
                        http::response res;
                        res.content_type = "text/plain; charset=utf-8";
                        res.body = cp->text();
                        return res;
                    });
                });

    r.add_async("GET", "/v1/proofs/inclusion", route_kind::read,
                [run_read, max, tiles = &t.tiles()](const http::request_context& ctx, http::responder done) {
                    if (!ctx.query_value("position"))
                        throw api_error(422, "invalid", "position is required", {{"field", "position"}});
                    const auto position = query_int(ctx, "position", 0, 1, max);
                    const auto wanted = ctx.query_value("tree_size") ? std::optional(query_int(ctx, "tree_size", 0, 1, max))
                                                                     : std::nullopt;
                    run_read(std::move(done), [position, wanted, tiles](pqxx::connection& c) {
                        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
                        std::int64_t size = 0;
                        if (wanted) {
                            size = *wanted;
                            if (size > store::tree_size(tx))
                                throw api_error(422, "invalid", "the tree does not reach that size yet",
                                                {{"field", "tree_size"}, {"tree_size", store::tree_size(tx)}});
                        } else {
                            const auto cp = store::latest_checkpoint(tx);
                            if (!cp) throw api_error(404, "not_found", "no checkpoint yet: name a tree_size");
                            size = cp->tree_size;
                        }
                        if (position > size)
                            throw api_error(422, "invalid", "position is beyond the tree size",
                                            {{"field", "position"}, {"tree_size", size}});
                        return http::json_response(200, std::move(inclusions_of(tx, {position}, size, tiles).front()));
                    });
                });

    r.add_async("GET", "/v1/proofs/consistency", route_kind::read,
                [run_read, max, tiles = &t.tiles()](const http::request_context& ctx, http::responder done) {
                    for (const char* k : {"from", "to"})
                        if (!ctx.query_value(k)) throw api_error(422, "invalid", std::string(k) + " is required", {{"field", k}});
                    const auto from = query_int(ctx, "from", 0, 1, max);
                    const auto to = query_int(ctx, "to", 0, 1, max);
                    if (from > to) throw api_error(422, "invalid", "from must not exceed to", {{"field", "from"}});
                    run_read(std::move(done), [from, to, tiles](pqxx::connection& c) {
                        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
                        if (const auto built = store::tree_size(tx); to > built)
                            throw api_error(422, "invalid", "the tree does not reach that size yet",
                                            {{"field", "to"}, {"tree_size", built}});
                        const auto proof = store::with_tiles(
                            tx, [&](const merkle::tree_reader& tree) { return tree.consistency_proof(from, to); }, tiles);
                        return http::json_response(200, json::object{{"from", from}, {"to", to}, {"hashes", hex_list(proof)}});
                    });
                });

    // A witness's co-signature. Any role may send one: what makes it count is the signature,
    // checked against the keys of --witness-key.
    r.add_async("POST", "/v1/ledger/checkpoint/cosignatures", route_kind::read,
                [&t, &m, run, max](const http::request_context& ctx, http::responder done) {
                    if (!ctx.query_value("tree_size"))
                        throw api_error(422, "invalid", "tree_size is required", {{"field", "tree_size"}});
                    const auto size = query_int(ctx, "tree_size", 0, 0, max);
                    if (ctx.req.body.size() > 1024)
                        throw api_error(422, "invalid", "a co-signature is one signature line", {{"field", "body"}});
                    run([&t, &m, size, line = ctx.req.body, done = std::move(done)]() mutable {
                        done(guarded([&] {
                            using R = transparency::cosign_result;
                            try {
                                const auto o = t.add_cosignature(size, line);
                                switch (o.result) {
                                case R::accepted:
                                    m.observe_cosignature(o.witness, true);
                                    return http::json_response(200, json::object{{"tree_size", size},
                                                                                 {"witness", o.witness},
                                                                                 {"timestamp", o.timestamp}});
                                case R::unknown_checkpoint:
                                    return http::error_response(404, "not_found", "no checkpoint of that tree size");
                                case R::unknown_witness:
                                    m.observe_cosignature("unknown", false);
                                    return http::error_response(422, "invalid", "not a witness of this daemon (--witness-key)",
                                                                {{"field", "body"}});
                                case R::bad_signature:
                                    m.observe_cosignature(o.witness, false);
                                    log_line(log_level::warn, "co-signature refused", {{"witness", o.witness}, {"tree_size", size}});
                                    return http::error_response(422, "invalid",
                                                                "the co-signature does not verify for that checkpoint",
                                                                {{"field", "body"}});
                                case R::malformed: break;
                                }
                                return http::error_response(422, "invalid", "the body must be one signature line "
                                                                            "\"\u2014 NAME BASE64\"",
                                                            {{"field", "body"}});
                            } catch (const pqxx::failure& e) {
                                return unavailable_response(e.what());
                            }
                        }));
                    });
                });
}

void add_api_routes(http::router& r, engine& eng, db_pool& reads, run_blocking_fn run, const mqledger::clock& clk,
                    const store::digest_signer* signer, store::tile_cache* tiles) {
    const services s{eng, reads, std::move(run), clk};

    // ---- accounts ----
    r.add_async("POST", "/v1/accounts", route_kind::account_write, [s](const http::request_context& ctx, http::responder done) {
        auto b = api::parse_open_account(ctx.json_body());
        run_account_command(s, ctx, b.account_id, cmd::open_account{b.currency}, 201, std::move(done));
    });
    r.add_async("POST", "/v1/accounts/{id}/funds", route_kind::account_write,
                [s](const http::request_context& ctx, http::responder done) {
                    auto id = path_id(ctx, "account");
                    run_account_command(s, ctx, id, api::parse_funds(ctx.json_body()), 200, std::move(done));
                });
    r.add_async("POST", "/v1/accounts/{id}/charges", route_kind::account_write,
                [s](const http::request_context& ctx, http::responder done) {
                    auto id = path_id(ctx, "account");
                    run_account_command(s, ctx, id, api::parse_charge(ctx.json_body()), 200, std::move(done));
                });
    r.add_async("GET", "/v1/accounts/{id}", route_kind::read, [s](const http::request_context& ctx, http::responder done) {
        auto id = path_id(ctx, "account");
        read(s, std::move(done), [id](pqxx::connection& c) {
            pqxx::nontransaction tx(c);
            const auto a = projections::load_account(tx, id);
            if (!a) throw api_error(404, "not_found", "no such account");
            return http::json_response(200, views::account(id, *a));
        });
    });

    // ---- instances: commands ----
    r.add_async("POST", "/v1/instances", route_kind::instance_action, [s](const http::request_context& ctx, http::responder done) {
        auto c = api::parse_purchase(ctx.json_body());
        auto id = c.instance_id;
        run_instance_command(s, ctx, std::move(id), std::move(c), 201, std::move(done));
    });
    r.add_async("POST", "/v1/instances/import", route_kind::instance_action,
                [s](const http::request_context& ctx, http::responder done) {
                    auto c = api::parse_import(ctx.json_body());
                    auto id = c.details.instance_id;
                    run_instance_command(s, ctx, std::move(id), std::move(c), 201, std::move(done));
                });
    // add-funds pays into the instance's account: the role that may add funds (billing, admin),
    // not the instance operator's. The literal segment wins over {action} below.
    r.add_async("POST", "/v1/instances/{id}/actions/add-funds", route_kind::account_write,
                [s](const http::request_context& ctx, http::responder done) {
                    auto id = path_id(ctx, "instance");
                    auto funds = api::parse_funds(ctx.json_body());
                    auto meta = meta_of(ctx);
                    s.run([s, id = std::move(id), funds = std::move(funds), meta = std::move(meta),
                           done = std::move(done)]() mutable {
                        done(guarded([&] {
                            try {
                                return pay_for_instance(s, id, funds, std::move(meta));
                            } catch (const pqxx::failure& e) {   // broken connections included
                                return unavailable_response(e.what());
                            }
                        }));
                    });
                });
    r.add_async("POST", "/v1/instances/{id}/actions/{action}", route_kind::instance_action,
                [s](const http::request_context& ctx, http::responder done) {
                    auto id = path_id(ctx, "instance");
                    auto c = api::parse_action(ctx.param("action"), ctx);
                    run_instance_command(s, ctx, std::move(id), std::move(c), 200, std::move(done));
                });
    for (const std::string kind : {"topics", "groups"}) {
        const bool topic = kind == "topics";
        r.add_async("POST", "/v1/instances/{id}/" + kind, route_kind::instance_action,
                    [s, topic](const http::request_context& ctx, http::responder done) {
                        auto id = path_id(ctx, "instance");
                        auto name = api::parse_name(ctx.json_body());
                        cmd::command c = topic ? cmd::command{cmd::create_topic{name}} : cmd::command{cmd::create_group{name}};
                        run_instance_command(s, ctx, std::move(id), std::move(c), 201, std::move(done));
                    });
        r.add_async("DELETE", "/v1/instances/{id}/" + kind + "/{name}", route_kind::instance_action,
                    [s, topic](const http::request_context& ctx, http::responder done) {
                        auto id = path_id(ctx, "instance");
                        const auto& name = ctx.param("name");
                        cmd::command c = topic ? cmd::command{cmd::delete_topic{name}} : cmd::command{cmd::delete_group{name}};
                        run_instance_command(s, ctx, std::move(id), std::move(c), 200, std::move(done));
                    });
    }
    // POST /v1/instances/{id}/usage (issue 15): a usage record of a billable instance, billed by
    // the settlement of its cycle (ledger/decide.cpp decides every refusal). Answers the record,
    // the cycle it belongs to and whether it repeats a record already recorded with the same
    // content (`duplicate`: nothing written); a repeat with the same Idempotency-Key answers as
    // the first request did.
    r.add_async("POST", "/v1/instances/{id}/usage", route_kind::instance_action,
                [s](const http::request_context& ctx, http::responder done) {
                    auto id = path_id(ctx, "instance");
                    auto c = api::parse_usage(ctx.json_body());
                    auto meta = meta_of(ctx);
                    s.run([s, id = std::move(id), c = std::move(c), meta = std::move(meta),
                           done = std::move(done)]() mutable {
                        done(guarded([&] {
                            const auto o = s.eng.execute_instance(id, c, meta);
                            if (o.kind != outcome_kind::ok || !o.instance || !o.instance->exists)
                                return outcome_response(o, 200, s.eng, id, s.clk.now());
                            const auto stream = instance_stream(id);
                            const auto records_this = [&](const std::string& ev_stream, const std::string& type,
                                                          const json::object& data) {
                                const auto* rid = data.if_contains("record_id");
                                return ev_stream == stream && type == "instance.usage_recorded" && rid != nullptr &&
                                       rid->is_string() && rid->get_string() == c.record_id;
                            };
                            bool recorded = false;
                            for (const auto& e : o.written) recorded = recorded || records_this(e.stream, e.type, e.data);
                            if (o.replayed && meta.idempotency_key) {
                                try {
                                    s.reads.with([&](pqxx::connection& conn) {
                                        pqxx::read_transaction tx(conn);
                                        if (const auto first = store::find_keyed_append(tx, *meta.idempotency_key))
                                            for (const auto& e : store::read_all(tx, first->first_position - 1, first->count))
                                                recorded = recorded || records_this(e.stream, e.type, e.data);
                                    });
                                } catch (const pqxx::failure& e) {
                                    return unavailable_response(e.what());
                                }
                            }
                            const auto& pol = projections::policy_of(*o.instance, s.eng.policies());
                            const auto own = cycle_containing(c.start, pol, o.instance->timezone);
                            return http::json_response(200, json::object{{"instance_id", id},
                                                                         {"record_id", c.record_id},
                                                                         {"metric", c.metric},
                                                                         {"quantity", c.quantity},
                                                                         {"start", codec::format_time(c.start)},
                                                                         {"end", codec::format_time(c.end)},
                                                                         {"cycle_start", codec::format_time(own.start)},
                                                                         {"cycle_end", codec::format_time(own.end)},
                                                                         {"duplicate", !recorded}});
                        }));
                    });
                });

    // ---- instances: reads ----
    r.add_async("GET", "/v1/instances/{id}", route_kind::read, [s](const http::request_context& ctx, http::responder done) {
        auto id = path_id(ctx, "instance");
        const auto as_of = query_time(ctx, "as_of");
        read(s, std::move(done), [s, id, as_of](pqxx::connection& c) {
            instance_state st;
            time_point at = s.clk.now();
            if (as_of) {
                pqxx::read_transaction tx(c);
                st = projections::instance_as_of(tx, id, *as_of, s.eng.policies());
                st.id = id;
                at = *as_of;
            } else {
                pqxx::nontransaction tx(c);
                if (auto loaded = projections::load_instance(tx, id)) st = std::move(*loaded);
            }
            if (!st.exists) throw api_error(404, "not_found", as_of ? "no such instance at that time" : "no such instance");
            return http::json_response(200, views::instance(st, projections::policy_of(st, s.eng.policies()), at));
        });
    });

    r.add_async("GET", "/v1/instances", route_kind::read, [s](const http::request_context& ctx, http::responder done) {
        const auto state_f = ctx.query_value("state").value_or("");
        const auto product_f = ctx.query_value("product").value_or("");
        const auto billing_f = ctx.query_value("billing").value_or("");
        const auto account_f = ctx.query_value("account_id").value_or("");
        const auto cursor = ctx.query_value("cursor").value_or("");
        if (!state_f.empty() && !parse_state(state_f)) throw api_error(422, "invalid", "unknown state", {{"field", "state"}});
        if (!product_f.empty() && !parse_product(product_f))
            throw api_error(422, "invalid", "unknown product", {{"field", "product"}});
        if (!billing_f.empty() && !parse_billing(billing_f))
            throw api_error(422, "invalid", "unknown billing model", {{"field", "billing"}});
        const auto limit = query_int(ctx, "limit", 100, 1, 1000);
        read(s, std::move(done), [=](pqxx::connection& c) {
            pqxx::nontransaction tx(c);
            const auto page = projections::list_instances(tx, {state_f, product_f, billing_f, account_f}, cursor, limit);
            json::array out;
            const auto now = s.clk.now();
            for (const auto& st : page.items) out.push_back(views::instance(st, projections::policy_of(st, s.eng.policies()), now));
            json::value next = nullptr;
            if (page.more) next = json::value(page.items.back().id);
            return http::json_response(200, json::object{{"items", std::move(out)}, {"next_cursor", std::move(next)}});
        });
    });

    r.add_async("GET", "/v1/instances/{id}/events", route_kind::read,
                [s, tiles](const http::request_context& ctx, http::responder done) {
                    auto id = path_id(ctx, "instance");
                    // Paged by stream version so a long-lived instance never builds one huge
                    // answer: `after` (a stream_version), `limit`; `next_after` when there is more.
                    const auto after = query_int(ctx, "after", 0, 0, std::numeric_limits<std::int64_t>::max());
                    const auto limit = query_int(ctx, "limit", 10000, 1, 10000);
                    const auto proofs_q = ctx.query_value("proofs").value_or("false");
                    if (proofs_q != "true" && proofs_q != "false")
                        throw api_error(422, "invalid", "proofs must be true or false", {{"field", "proofs"}});
                    const bool proofs = proofs_q == "true";
                    read(s, std::move(done), [id, after, limit, proofs, tiles](pqxx::connection& c) {
                        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
                        const auto stream = instance_stream(id);
                        const auto evs = store::read_stream_page(tx, stream, after, limit + 1);
                        if (evs.empty() && after == 0) throw api_error(404, "not_found", "no such instance");
                        json::array out;
                        json::value next = nullptr;
                        for (std::size_t i = 0; i < evs.size(); ++i) {
                            if (static_cast<std::int64_t>(i) == limit) {
                                next = out.back().as_object().at("stream_version");
                                break;
                            }
                            out.push_back(views::event(evs[i]));
                        }
                        json::object answer{{"items", std::move(out)}, {"next_after", std::move(next)}};
                        if (proofs) {
                            // Each event's inclusion proof against the newest checkpoint (null
                            // for an event newer than it), and that checkpoint.
                            const auto cp = store::latest_checkpoint(tx);
                            std::vector<std::int64_t> covered;
                            for (const auto& item : answer["items"].as_array())
                                if (const auto p = item.at("position").as_int64(); cp && p <= cp->tree_size)
                                    covered.push_back(p);
                            auto answers = cp ? inclusions_of(tx, covered, cp->tree_size, tiles) : std::vector<json::object>{};
                            std::size_t next_proof = 0;
                            for (auto& item : answer["items"].as_array()) {
                                auto& o = item.as_object();
                                if (next_proof < covered.size() && o.at("position").as_int64() == covered[next_proof]) {
                                    auto& proof = answers[next_proof++];
                                    proof.erase("position");
                                    o["proof"] = std::move(proof);
                                } else {
                                    o["proof"] = nullptr;
                                }
                            }
                            answer["checkpoint"] = cp ? json::value(cp->text()) : json::value(nullptr);
                        }
                        return http::json_response(200, answer);
                    });
                });

    // ---- ledger ----
    r.add_async("GET", "/v1/events", route_kind::read, [s](const http::request_context& ctx, http::responder done) {
        const auto after = query_int(ctx, "after", 0, 0, std::numeric_limits<std::int64_t>::max());
        const auto limit = query_int(ctx, "limit", 100, 1, 10000);
        read(s, std::move(done), [after, limit](pqxx::connection& c) {
            // One snapshot for the page and the head, so a client resuming from `head` skips
            // nothing.
            pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
            const auto evs = store::read_all(tx, after, limit);
            const auto h = store::head(tx);
            json::array out;
            for (const auto& e : evs) out.push_back(views::event(e));
            return http::json_response(200, json::object{{"items", std::move(out)}, {"head", h.position}});
        });
    });

    r.add_async("GET", "/v1/releases/pending", route_kind::read, [s](const http::request_context& ctx, http::responder done) {
        const auto before = query_time(ctx, "before");
        const auto limit = query_int(ctx, "limit", 1000, 1, 10000);
        read(s, std::move(done), [before, limit](pqxx::connection& c) {
            pqxx::nontransaction tx(c);
            json::array out;
            for (const auto& p : projections::pending_releases(tx, before, limit))
                out.push_back(json::object{{"instance_id", p.instance_id},
                                           {"state", p.state},
                                           {"release_at", codec::format_time(p.release_at)},
                                           {"cause", p.cause}});
            return http::json_response(200, items(std::move(out)));
        });
    });

    r.add_async("GET", "/v1/ledger/head", route_kind::read, [s, signer](const http::request_context&, http::responder done) {
        read(s, std::move(done), [signer](pqxx::connection& c) {
            pqxx::read_transaction tx(c);
            const auto h = store::head(tx);
            store::digest d{h.position, h.hash, std::nullopt};
            if (signer) d.signature = signer->sign(h.position, h.hash);
            json::object out{{"position", h.position}, {"hash", h.hash}, {"digest", store::to_string(d)}};
            if (d.signature) out["signature"] = *d.signature;
            return http::json_response(200, out);
        });
    });
}

void add_policy_routes(http::router& r, const policy_registry& policies, run_blocking_fn /*run*/) {
    // In memory: the registry holds every version the log records (policy_service), so this
    // route reads no database and cannot block.
    r.add("GET", "/v1/policy", route_kind::read, [&policies](const http::request_context& ctx) {
        const auto& current = policies.current();
        const auto version = static_cast<policy_version>(
            query_int(ctx, "version", current.version(), 1, std::numeric_limits<policy_version>::max()));
        const policy_set* set = policies.find(version);
        if (set == nullptr)
            throw api_error(404, "not_found",
                            "no policy version " + std::to_string(version) + " (the newest is " +
                                std::to_string(current.version()) + ")");
        auto body = projections::policy_changed_data(*set);
        body["in_force"] = version == current.version();
        return http::json_response(200, body);
    });
}

} // namespace mqledger
