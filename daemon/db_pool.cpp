#include "daemon/db_pool.h"

#include "ledger/store/conninfo.h"

namespace mqledger {

db_pool::db_pool(std::string conninfo, std::size_t size, std::function<void(pqxx::connection&)> prepare)
    : conninfo_(store::for_daemon(conninfo)), size_(size == 0 ? 1 : size), prepare_(std::move(prepare)) {}

db_pool::~db_pool() = default;

db_pool::lease::~lease() {
    if (pool_ != nullptr) pool_->give_back(std::move(conn_));
}

db_pool::lease db_pool::acquire() {
    {
        std::unique_lock lock(mutex_);
        freed_.wait(lock, [&] { return !idle_.empty() || open_ < size_; });
        if (!idle_.empty()) {
            auto c = std::move(idle_.back());
            idle_.pop_back();
            return lease(*this, std::move(c));
        }
        ++open_;   // reserve the slot while connecting outside the lock
    }
    try {
        auto c = std::make_unique<pqxx::connection>(conninfo_);
        if (prepare_) prepare_(*c);
        return lease(*this, std::move(c));
    } catch (...) {
        std::lock_guard lock(mutex_);
        --open_;
        freed_.notify_one();
        throw;
    }
}

void db_pool::give_back(std::unique_ptr<pqxx::connection> c) noexcept {
    std::lock_guard lock(mutex_);
    if (c && c->is_open()) {
        idle_.push_back(std::move(c));
    } else {
        --open_;
    }
    freed_.notify_one();
}

} // namespace mqledger
