// Timer leadership among several daemons on one database (issue 6, DESIGN.md "Timers"): the
// daemon holding a PostgreSQL session advisory lock is the one that fires timers. The lock lives
// as long as the session, so when the leader dies (kill -9, crash, lost network) PostgreSQL ends
// its session and a survivor takes the lock at its next attempt, within seconds.
//
// Leadership is an efficiency device, not the safety net: a timer appends with the stream
// versions it was decided on, so two daemons that both believed they led (a partition healing)
// would still write each timer event once; the loser's append conflicts and re-decides on
// state in which the timer has already fired.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <memory>
#include <string>

namespace mqledger {

/// The session advisory lock key of timer leadership (distinct from the store's append lock).
inline constexpr std::int64_t timer_leader_key = 7887453213541990402;

class leader_lock {
public:
    enum class status {
        leader,     // this process holds the lock (checked on a live session just now)
        follower,   // another session holds it
        unknown,    // the database could not be asked; not the leader
    };

    /// Does not connect yet; `conninfo` gets the daemon's connect timeout and keepalives.
    leader_lock(std::string conninfo, std::int64_t key = timer_leader_key);
    ~leader_lock();
    leader_lock(const leader_lock&) = delete;
    leader_lock& operator=(const leader_lock&) = delete;

    /// Confirms a held lock on its live session, or tries to take it (never waits for it).
    /// Reconnects as needed; never throws. Call from one thread.
    [[nodiscard]] status check() noexcept;
    /// Gives leadership up now (closes the session). Call from the thread that calls check().
    void release() noexcept;

private:
    std::string conninfo_;
    std::int64_t key_;
    std::unique_ptr<pqxx::connection> conn_;
    bool held_ = false;
};

} // namespace mqledger
