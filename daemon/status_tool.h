// `mqledger status` (status_tool.cpp): what the database says about the ledger now, read-only.
// Split from the command so that tests can read the figures without a process.
#pragma once

#include "ledger/store/event_store.h"
#include "ledger/store/tree_store.h"
#include "ledger/types.h"
#include "projections/queries.h"

#include <boost/json/object.hpp>
#include <pqxx/pqxx>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mqledger {

struct status_report {
    time_point now{};                 // the time the figures are computed at
    bool now_from_database = true;    // false: given with --now
    bool hot_standby = false;         // pg_is_in_recovery()
    store::head_info head;

    struct leader_info {
        std::string state = "unknown";   // held | none | unknown
        std::optional<std::int64_t> pid;
        std::optional<std::string> user, application_name, client_addr;
        std::optional<time_point> session_start;
        std::string detail;
    } leader;

    struct timer {
        std::string instance_id, kind;
        time_point due_at;
    };
    std::int64_t timers_count = 0;      // due at or before now + 1 h (past due ones included)
    std::int64_t timers_past_due = 0;   // due at or before now
    std::vector<timer> timers;          // the soonest of them

    struct overdue_account {
        std::string account_id, currency;
        std::int64_t balance = 0, owed = 0;
        std::optional<time_point> overdue_since;
    };
    std::int64_t overdue_count = 0;   // accounts that owe (owed > 0), as mqledger_accounts_overdue
    std::vector<overdue_account> overdue;

    std::int64_t releases_count = 0;   // release_at at or before now + 24 h, as GET /v1/releases/pending?before=
    std::vector<projections::pending_release> releases;

    std::int64_t tree_size = 0;
    std::optional<store::stored_checkpoint> checkpoint;   // the newest
};

/// Reads every figure in one REPEATABLE READ, READ ONLY transaction on `conn` (prepares the
/// projections' read statements on it); `now` nullopt = the database's now(). Lists hold at most
/// `list_limit` rows each. Throws pqxx exceptions.
[[nodiscard]] status_report read_status(pqxx::connection& conn, std::optional<time_point> now,
                                        std::size_t list_limit = 5);

/// The --format json object (keys documented in README.md "Command line").
[[nodiscard]] boost::json::object to_json(const status_report& s);
/// The aligned text for a person.
[[nodiscard]] std::string to_text(const status_report& s);

} // namespace mqledger
