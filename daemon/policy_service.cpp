#include "daemon/policy_service.h"

#include "daemon/db_pool.h"
#include "ledger/store/event_store.h"
#include "projections/projector.h"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <fstream>
#include <sstream>

namespace mqledger {

namespace json = boost::json;

policy_service::policy_service(policy_registry& registry, store::event_store& store, db_pool& reads, const clock& clk,
                               std::string file)
    : registry_(registry), store_(store), reads_(reads), clock_(clk), file_(std::move(file)) {}

json::value policy_service::read_file() const {
    if (file_.empty()) return json::object{};
    std::ifstream in(file_, std::ios::binary);
    if (!in) throw policy_file_error("--policy " + file_ + ": cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    json::value v;
    try {
        v = json::parse(text.str());
    } catch (const std::exception& e) {
        throw policy_file_error("--policy " + file_ + ": not JSON: " + e.what());
    }
    std::string error;
    if (!policy_set::defaults().with_overrides(v, error)) throw policy_file_error("--policy " + file_ + ": " + error);
    return v;
}

policy_version policy_service::refresh() {
    std::lock_guard serial(mutex_);
    const auto logged = reads_.with([&](pqxx::connection& c) {
        pqxx::read_transaction tx(c);
        return projections::load_policies(tx);
    });
    registry_.add_missing(logged);
    return registry_.current().version();
}

policy_service::outcome policy_service::apply() {
    std::lock_guard serial(mutex_);
    const auto overrides = read_file();
    for (int attempt = 0;; ++attempt) {
        // The versions the log holds (another daemon may have added some), and the stream's
        // version to append against.
        std::int64_t stream_version = 0;
        const auto logged = reads_.with([&](pqxx::connection& c) {
            pqxx::read_transaction tx(c);
            auto r = projections::load_policies(tx);
            stream_version = static_cast<std::int64_t>(r.versions().size()) - 1;   // version 1 is built in
            return r;
        });
        registry_.add_missing(logged);
        const auto& current = registry_.current();

        std::string error;
        auto wanted = table_from_json(overrides, current.version() + 1, error);
        if (!wanted) throw policy_file_error("--policy " + file_ + ": " + error);   // read_file checked it
        // Equal tables have equal hashes (the hash is the table's, not its version's).
        const auto data = projections::policy_changed_data(*wanted);
        if (data.at("table") == table_json(current)) {
            loaded_ = true;
            return {false, current.version(), std::string(data.at("hash").as_string())};
        }

        store::append_request req;
        req.streams.push_back({projections::policy_stream, stream_version,
                               {store::new_event{projections::policy_changed_type, data, clock_.now()}}});
        req.metadata["actor"] = "policy";
        req.metadata["policy_version"] = wanted->version();
        if (!file_.empty()) req.metadata["policy_file"] = file_;
        req.wait_when_full = true;
        req.projection = std::shared_ptr<const projections::unit_rows>(std::make_shared<projections::unit_rows>());
        const auto result = store_.append(std::move(req));
        if (result.ok()) {
            const auto version = wanted->version();
            registry_.add(std::move(*wanted));
            loaded_ = true;
            return {true, version, std::string(data.at("hash").as_string())};
        }
        if (result.code != store::append_code::version_conflict || attempt >= 5)
            throw std::runtime_error("policy.changed not appended: " + result.message);
        // Another daemon appended a version meanwhile: take it in and compare again.
    }
}

} // namespace mqledger
