// A small pool of read connections for the request and timer paths (DESIGN.md "Shape": the
// daemon loads current state from the projections before deciding). Writes never go through
// it: they go through the event store's single writer. Connections are opened lazily, each with
// the prepared statements the daemon's reads use, and dropped when they break, so the pool
// recovers by itself once the database is back.
#pragma once

#include <pqxx/pqxx>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mqledger {

class db_pool {
public:
    /// At most `size` connections to `conninfo`; `prepare` runs once on every new connection.
    db_pool(std::string conninfo, std::size_t size, std::function<void(pqxx::connection&)> prepare = {});
    ~db_pool();
    db_pool(const db_pool&) = delete;
    db_pool& operator=(const db_pool&) = delete;

    class lease {
    public:
        lease(db_pool& pool, std::unique_ptr<pqxx::connection> c) : pool_(&pool), conn_(std::move(c)) {}
        lease(lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), conn_(std::move(o.conn_)) {}
        lease& operator=(lease&&) = delete;
        ~lease();
        [[nodiscard]] pqxx::connection& conn() const noexcept { return *conn_; }
        /// The connection failed: close it instead of returning it to the pool.
        void discard() noexcept { conn_.reset(); }

    private:
        db_pool* pool_;
        std::unique_ptr<pqxx::connection> conn_;
    };

    /// A connection for the caller alone; waits while all are leased. Throws pqxx exceptions
    /// when a new connection cannot be opened. Thread-safe.
    [[nodiscard]] lease acquire();

    /// Runs `fn` with a leased connection; a pqxx::broken_connection discards it and is
    /// rethrown. Thread-safe.
    template <typename Fn>
    auto with(Fn&& fn) {
        auto l = acquire();
        try {
            return fn(l.conn());
        } catch (const pqxx::broken_connection&) {
            l.discard();
            throw;
        } catch (const pqxx::sql_error&) {
            // A failed statement in a non-transaction leaves the connection usable, but a
            // server-side termination shows up here too: check before reuse.
            if (!l.conn().is_open()) l.discard();
            throw;
        }
    }

private:
    friend class lease;
    void give_back(std::unique_ptr<pqxx::connection> c) noexcept;

    std::string conninfo_;
    std::size_t size_;
    std::function<void(pqxx::connection&)> prepare_;
    std::mutex mutex_;
    std::condition_variable freed_;
    std::vector<std::unique_ptr<pqxx::connection>> idle_;
    std::size_t open_ = 0;   // leased + idle
};

} // namespace mqledger
