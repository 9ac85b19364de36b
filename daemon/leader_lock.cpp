#include "daemon/leader_lock.h"

#include "ledger/store/conninfo.h"

namespace mqledger {

leader_lock::leader_lock(std::string conninfo, std::int64_t key)
    : conninfo_(store::for_daemon(conninfo)), key_(key) {}

leader_lock::~leader_lock() { release(); }

leader_lock::status leader_lock::check() noexcept {
    try {
        if (!conn_) {
            held_ = false;
            conn_ = std::make_unique<pqxx::connection>(conninfo_);
        }
        pqxx::nontransaction tx(*conn_);
        if (held_) {
            // A session lock is held until its session ends; a round trip on the session proves
            // it is still ours (a terminated backend or a restarted server fails here).
            tx.exec("SELECT 1");
            return status::leader;
        }
        held_ = tx.exec_params1("SELECT pg_try_advisory_lock($1)", key_)[0].as<bool>();
        return held_ ? status::leader : status::follower;
    } catch (...) {
        conn_.reset();
        held_ = false;
        return status::unknown;
    }
}

void leader_lock::release() noexcept {
    try {
        conn_.reset();   // ending the session releases the lock
    } catch (...) {
    }
    held_ = false;
}

} // namespace mqledger
