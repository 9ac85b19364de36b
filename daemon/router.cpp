#include "daemon/router.h"

#include <future>

#include "ledger/canonical_json.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse_path.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/pchars.hpp>

#include <algorithm>
#include <cctype>
#include <set>

namespace mqledger::http {

std::string_view request::header_value(std::string_view name) const noexcept {
    for (const auto& h : headers)
        if (h.name.size() == name.size() &&
            std::equal(h.name.begin(), h.name.end(), name.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            }))
            return h.value;
    return {};
}

response json_response(int status, const boost::json::value& v) {
    response r;
    r.status = status;
    r.body = boost::json::serialize(v);
    return r;
}

response error_response(int status, std::string_view code, std::string_view message,
                        const boost::json::object& extra) {
    boost::json::object err = extra;
    err["code"] = code;
    err["message"] = message;
    return json_response(status, boost::json::object{{"error", std::move(err)}});
}

const std::string& request_context::param(std::string_view name) const {
    for (const auto& [k, v] : params)
        if (k == name) return v;
    throw std::out_of_range("no path parameter '" + std::string(name) + "'");
}

std::optional<std::string> request_context::query_value(std::string_view name) const {
    for (const auto& [k, v] : query)
        if (k == name) return v;
    return std::nullopt;
}

boost::json::value request_context::json_body() const {
    boost::system::error_code ec;
    auto v = boost::json::parse(req.body, ec);
    if (ec) throw api_error(400, "malformed", "the body is not JSON: " + ec.message());
    return v;
}

// Percent-decoding is Boost.URL's: make_pct_string_view checks every escape (a '%' followed by
// two hex digits), decode() undoes them; any other byte is kept as it is.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
    const auto checked = boost::urls::make_pct_string_view(s);
    if (!checked) return std::nullopt;
    return checked->decode(boost::urls::encoding_opts(plus_is_space));
}

namespace {

// The request as an error message may quote it. Beast passes bytes 0x80-0xFF of the target
// through, not necessarily as UTF-8, and the message goes into a JSON body: such bytes and
// control characters are shown percent-encoded.
std::string shown(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (c < 0x20 || c >= 0x7f) {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

// Beast passes request targets with bytes that RFC 3986 does not allow unescaped (0x80-0xFF,
// '"', '<', '>', '\\', '^', '`', '{', '|', '}', '[', ']', '#'); Boost.URL's grammar refuses
// them. Such a byte is taken as its own percent-escape (what a browser would have sent), so an
// id decodes as it always did; '%' is left alone, so a bad escape is still refused by the parse.
template <typename CharSet>
std::string escape_stray(std::string_view s, const CharSet& allowed) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c == '%' || allowed(static_cast<char>(c))) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

constexpr auto path_chars = boost::urls::pchars + '/';
constexpr auto query_chars = boost::urls::pchars + '/' + '?';

// The decoded segments of an absolute path (Boost.URL's parse_path); nullopt on a bad escape.
// Every '/' opens a segment, so "/a/" ends with an empty one and "/" is one empty segment.
std::optional<std::vector<std::string>> path_segments(std::string_view raw_path) {
    auto escaped = escape_stray(raw_path, path_chars);
    // Boost.URL reads a leading "/./" as the prefix that keeps "//x" from looking like an
    // authority, and drops that "." segment; here it is a segment like any other (no dot-segment
    // is removed anywhere else either), so "/./v1/clock" stays a path of three segments.
    if (escaped.starts_with("/./")) escaped.replace(1, 1, "%2E");
    const auto parsed = boost::urls::parse_path(escaped);
    if (!parsed) return std::nullopt;
    std::vector<std::string> out;
    for (const auto seg : *parsed) out.push_back(seg.decode());
    if (out.empty()) out.emplace_back();   // "/": Boost.URL counts no segment
    return out;
}

// The query's key=value pairs in order, decoded with '+' as space (Boost.URL's parse_query);
// empty pairs ("a=1&&b=2") are skipped. nullopt on a bad escape.
std::optional<std::vector<std::pair<std::string, std::string>>> query_pairs(std::string_view raw_query) {
    const auto escaped = escape_stray(raw_query, query_chars);
    const auto parsed = boost::urls::parse_query(escaped);
    if (!parsed) return std::nullopt;
    const boost::urls::encoding_opts form(true);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto p : *parsed) {
        if (p.key.empty() && !p.has_value) continue;
        out.emplace_back(p.key.decode(form), p.has_value ? p.value.decode(form) : std::string());
    }
    return out;
}

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> out;
    // path starts with '/': every '/' opens a segment (so "/a/" has a trailing empty one).
    std::size_t i = 1;
    while (true) {
        const auto slash = path.find('/', i);
        out.push_back(path.substr(i, slash == std::string_view::npos ? std::string_view::npos : slash - i));
        if (slash == std::string_view::npos) break;
        i = slash + 1;
    }
    return out;
}

} // namespace

void router::add(std::string_view method, std::string_view pattern, route_kind need, handler fn) {
    if (pattern.empty() || pattern.front() != '/')
        throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
    route r{std::string(method), std::string(pattern), {}, need, std::move(fn), {}};
    for (auto seg : split_path(pattern)) {
        if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}')
            r.segments.push_back({std::string(seg.substr(1, seg.size() - 2)), true});
        else if (seg.find_first_of("{}") != std::string_view::npos)
            throw std::invalid_argument("a {param} must be a whole segment: " + std::string(pattern));
        else
            r.segments.push_back({std::string(seg), false});
    }
    for (const auto& other : routes_)
        if (other.method == r.method && other.pattern == r.pattern)
            throw std::invalid_argument("route registered twice: " + r.method + " " + r.pattern);
    routes_.push_back(std::move(r));
}

std::vector<router::match> router::matches(const std::vector<std::string>& segs) const {
    std::vector<match> out;
    for (const auto& r : routes_) {
        if (r.segments.size() != segs.size()) continue;
        match m{&r, {}};
        bool ok = true;
        for (std::size_t i = 0; ok && i < segs.size(); ++i) {
            if (r.segments[i].is_param) {
                if (segs[i].empty()) ok = false;   // "/v1/instances/" names no instance
                else m.params.emplace_back(r.segments[i].text, segs[i]);
            } else {
                ok = r.segments[i].text == segs[i];
            }
        }
        if (ok) out.push_back(std::move(m));
    }
    return out;
}

bool router::more_specific(const route& a, const route& b) noexcept {
    for (std::size_t i = 0; i < a.segments.size() && i < b.segments.size(); ++i)
        if (a.segments[i].is_param != b.segments[i].is_param) return !a.segments[i].is_param;
    return false;
}

void router::add_async(std::string_view method, std::string_view pattern, route_kind need, async_handler fn) {
    add(method, pattern, need, handler{});
    for (auto& r : routes_)
        if (r.method == method && r.pattern == pattern) r.afn = std::move(fn);
}

response router::handle(const request& req) const noexcept {
    bool deferred = false;
    return dispatch(req, nullptr, deferred);
}

void router::handle(const request& req, responder done) const noexcept {
    bool deferred = false;
    auto r = dispatch(req, &done, deferred);
    if (!deferred) done(std::move(r));
}

response router::dispatch(const request& req, const responder* done, bool& deferred) const noexcept {
    try {
        const std::string_view target = req.target;
        const auto qmark = target.find('?');
        const std::string_view raw_path = target.substr(0, qmark);
        if (raw_path.empty() || raw_path.front() != '/')
            return error_response(404, "not_found", "no route for " + shown(req.method) + " " + shown(raw_path));

        auto decoded = path_segments(raw_path);
        if (!decoded) return error_response(400, "malformed", "bad percent-encoding in the path");
        const std::vector<std::string> segs = std::move(*decoded);
        for (const auto& seg : segs) {
            // Ids travel on into SQL parameters and stream names: no control bytes, only UTF-8.
            const bool controls = std::any_of(seg.begin(), seg.end(), [](char c) {
                return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
            });
            if (controls || !valid_utf8(seg))
                return error_response(400, "malformed", "a path segment holds control characters or invalid UTF-8");
        }
        const auto found = matches(segs);
        if (found.empty())
            return error_response(404, "not_found", "no route for " + shown(req.method) + " " + shown(raw_path));

        const match* best = nullptr;
        std::set<std::string> allow;
        for (const auto& m : found) {
            allow.insert(m.r->method);
            if (m.r->method == req.method && (!best || more_specific(*m.r, *best->r))) best = &m;
        }
        if (!best) {
            std::string allow_list;
            for (const auto& a : allow) allow_list += (allow_list.empty() ? "" : ", ") + a;
            auto r = error_response(405, "method_not_allowed",
                                    shown(req.method) + " is not allowed on " + shown(raw_path) + " (allowed: " +
                                        allow_list + ")");
            r.headers.push_back({"Allow", allow_list});
            r.route = found.front().r->pattern;
            return r;
        }

        const route& rt = *best->r;
        request_context ctx{req, raw_path, best->params, {}, std::nullopt};
        if (qmark != std::string_view::npos) {
            auto pairs = query_pairs(target.substr(qmark + 1));
            // Query values travel on into SQL parameters too: no control bytes, only UTF-8.
            const auto clean = [](const std::string& x) {
                return valid_utf8(x) && std::none_of(x.begin(), x.end(), [](char c) {
                           return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                       });
            };
            if (!pairs || !std::all_of(pairs->begin(), pairs->end(),
                                       [&](const auto& kv) { return clean(kv.first) && clean(kv.second); })) {
                auto r = error_response(400, "malformed",
                                        "bad percent-encoding, control characters or invalid UTF-8 in the query");
                r.route = rt.pattern;
                return r;
            }
            ctx.query = std::move(*pairs);
        }

        if (rt.need != route_kind::open) {
            if (!tokens_) {
                ctx.who = principal{role::admin, "anonymous"};
            } else {
                ctx.who = tokens_->authenticate(req.header_value("Authorization"));
                if (!ctx.who) {
                    auto r = error_response(401, "unauthenticated", "a valid 'Authorization: Bearer TOKEN' is required");
                    r.headers.push_back({"WWW-Authenticate", "Bearer"});
                    r.route = rt.pattern;
                    return r;
                }
                if (!allowed(ctx.who->who, rt.need)) {
                    auto r = error_response(403, "forbidden",
                                            "role " + std::string(to_string(ctx.who->who)) + " may not " + rt.method +
                                                " " + rt.pattern);
                    r.route = rt.pattern;
                    return r;
                }
            }
        }

        response r;
        try {
            if (!rt.afn) {
                r = rt.fn(ctx);
            } else if (done == nullptr) {
                // A synchronous caller of an asynchronous route (tests): wait for the answer.
                std::promise<response> answer;
                auto f = answer.get_future();
                rt.afn(ctx, [&answer](response&& x) { answer.set_value(std::move(x)); });
                r = f.get();
            } else {
                rt.afn(ctx, [d = *done, pattern = rt.pattern](response&& x) mutable {
                    x.route = pattern;
                    d(std::move(x));
                });
                deferred = true;
                return {};
            }
        } catch (const api_error& e) {
            r = error_response(e.status, e.code, e.what(), e.extra);
        } catch (const std::exception& e) {
            r = error_response(500, "internal", "internal error");
            r.internal_error = e.what();
        } catch (...) {
            r = error_response(500, "internal", "internal error");
            r.internal_error = "unknown exception";
        }
        r.route = rt.pattern;
        return r;
    } catch (...) {
        // Only allocation failure can get here; answer without allocating much more.
        response r;
        r.status = 500;
        r.body = R"({"error":{"code":"internal","message":"internal error"}})";
        r.internal_error = "router failure";
        return r;
    }
}

std::string router::route_of(std::string_view method, std::string_view target) const {
    const auto path = target.substr(0, target.find('?'));
    if (path.empty() || path.front() != '/') return "unmatched";
    const auto segs = path_segments(path);
    if (!segs) return "unmatched";
    const auto found = matches(*segs);
    const match* best = nullptr;
    for (const auto& m : found)
        if (m.r->method == method && (!best || more_specific(*m.r, *best->r))) best = &m;
    if (best) return best->r->pattern;
    return found.empty() ? "unmatched" : found.front().r->pattern;
}

} // namespace mqledger::http
