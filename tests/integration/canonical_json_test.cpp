// canonical_json must print exactly what PostgreSQL prints for jsonb (`data::text`): the hash
// chain is computed from the former and recomputed by auditors from the latter.
#include "tests/integration/pg_fixture.h"

#include "ledger/canonical_json.h"
#include "ledger/clock.h"
#include "ledger/store/event_store.h"
#include "ledger/store/pg_text.h"
#include "ledger/store/verify.h"

#include <boost/json.hpp>

#include <random>

using mqledger::canonical_json;
using mqledger::test::scratch_db;

namespace {

// Random documents with the awkward parts: control characters, quotes, backslashes, slashes,
// non-ASCII of 2, 3 and 4 bytes, U+2028, DEL, keys of equal length, nesting, int64/uint64 edges.
class doc_gen {
public:
    explicit doc_gen(std::uint64_t seed) : rng_(seed) {}

    boost::json::value value(int depth) {
        const int pick = depth >= 4 ? int_in(0, 4) : int_in(0, 6);
        switch (pick) {
        case 0: return nullptr;
        case 1: return int_in(0, 1) == 1;
        case 2: return integer();
        case 3:
        case 4: return boost::json::string(string(int_in(0, 12)));
        case 5: {
            boost::json::array a;
            for (int i = int_in(0, 5); i > 0; --i) a.push_back(value(depth + 1));
            return a;
        }
        default: return object(depth + 1);
        }
    }

    boost::json::object object(int depth) {
        boost::json::object o;
        for (int i = int_in(0, 7); i > 0; --i) o[string(int_in(0, 3))] = value(depth);  // short keys collide in length
        return o;
    }

private:
    int int_in(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

    boost::json::value integer() {
        switch (int_in(0, 4)) {
        case 0: return std::numeric_limits<std::int64_t>::min();
        case 1: return std::numeric_limits<std::int64_t>::max();
        case 2: return std::numeric_limits<std::uint64_t>::max();
        case 3: return static_cast<std::int64_t>(rng_()) >> int_in(0, 62);
        default: return int_in(-1000, 1000);
        }
    }

    std::string string(int n) {
        static const char* pieces[] = {"a", "b", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\b", "\f",
                                       "\x01", "\x1f", "\x7f", "é", "ß", "中", "文", "😀", "\u2028", "{", "}",
                                       ":", ",", "[", "u", "\\u0041"};
        std::string s;
        for (int i = 0; i < n; ++i) s += pieces[int_in(0, static_cast<int>(std::size(pieces)) - 1)];
        return s;
    }

    std::mt19937_64 rng_;
};

} // namespace

TEST_CASE("canonical JSON: fixed examples match PostgreSQL's jsonb text", "[canonical_json]") {
    CHECK(canonical_json(boost::json::parse(R"({"b":1,"aa":[1,2,{}],"a":"x\u0001é\\/"})")) ==
          R"({"a": "x\u0001é\\/", "b": 1, "aa": [1, 2, {}]})");
    CHECK(canonical_json(boost::json::parse(R"({"a":1,"a":2})")) == R"({"a": 2})");  // last duplicate wins
    CHECK(canonical_json(boost::json::parse(R"([])")) == "[]");
    CHECK(canonical_json(boost::json::parse(R"({})")) == "{}");
    CHECK(canonical_json(boost::json::parse("\"\\b\\f\\n\\r\\t\\u001f\\u007f\"")) == "\"\\b\\f\\n\\r\\t\\u001f\x7f\"");
    CHECK(mqledger::jsonb_incompatibility(boost::json::parse("[1.5]")).has_value());
    CHECK(mqledger::jsonb_incompatibility(boost::json::parse(R"({"k":"\u0000"})")).has_value());
    CHECK(mqledger::jsonb_incompatibility(boost::json::value(std::string("\xff"))).has_value());
    CHECK_FALSE(mqledger::jsonb_incompatibility(boost::json::parse(R"({"k":[1,"é",null,true]})")).has_value());
}

TEST_CASE("canonical JSON: equals PostgreSQL's data::text on 5000 random documents", "[canonical_json]") {
    scratch_db db;
    const std::uint64_t seed = std::random_device{}();
    INFO("seed " << seed << " (replay by hard-coding it here)");
    doc_gen gen(seed);
    std::vector<std::string> inputs, expected;
    for (int i = 0; i < 5000; ++i) {
        const boost::json::value doc = gen.object(0);
        REQUIRE_FALSE(mqledger::jsonb_incompatibility(doc).has_value());
        inputs.push_back(boost::json::serialize(doc));  // Boost's own text: PostgreSQL parses it independently
        expected.push_back(canonical_json(doc));
    }
    // Duplicate keys in the text PostgreSQL parses: the last wins there as in Boost.
    inputs.push_back(R"({"k": 1, "zz": 2, "k": {"x": 1, "x": [3]}})");
    expected.push_back(canonical_json(boost::json::parse(inputs.back())));

    pqxx::connection c(db.app_url());
    pqxx::work w(c);
    const auto r = w.exec_params("SELECT d::jsonb::text FROM unnest($1::text[]) WITH ORDINALITY AS u(d, n) ORDER BY n",
                                 mqledger::store::detail::text_array(inputs));
    REQUIRE(r.size() == inputs.size());
    int mismatches = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const auto pg = r[i][0].as<std::string>();
        if (pg != expected[i] && mismatches++ < 5) {
            INFO("input " << inputs[i]);
            CHECK(pg == expected[i]);
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("canonical JSON: random documents appended by the store hash the same when recomputed from the table", "[canonical_json][chain]") {
    scratch_db db;
    const std::uint64_t seed = std::random_device{}();
    INFO("seed " << seed);
    doc_gen gen(seed);
    mqledger::manual_clock clk(mqledger::time_point(std::chrono::seconds(1'763'899'200)));
    mqledger::store::event_store store(db.app_url(), clk);
    std::vector<std::future<mqledger::store::append_result>> futures;
    std::vector<boost::json::object> docs;
    for (int i = 0; i < 500; ++i) {
        docs.push_back(gen.object(0));
        mqledger::store::append_request r;
        r.streams.push_back({"instance-json", mqledger::store::any_version, {{"test.json", docs.back(), clk.now()}}});
        r.metadata = gen.object(1);
        futures.push_back(store.append_async(std::move(r)));
    }
    for (auto& f : futures) REQUIRE(f.get().ok());
    const auto rep = mqledger::store::verify_chain(db.app_url());  // recomputes from data::text
    CHECK(rep.ok);
    CHECK(rep.events == 500);
    const auto stored = mqledger::store::read_stream(db.app_url(), "instance-json");
    REQUIRE(stored.size() == docs.size());
    for (std::size_t i = 0; i < docs.size(); ++i) REQUIRE(stored[i].data == docs[i]);
}
