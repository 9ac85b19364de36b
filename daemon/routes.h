// The API's routes, grouped by area; serve.cpp registers each group on the one router.
// Each group is a function of the router and the few services it needs (no Application&).
#pragma once

#include "daemon/router.h"

#include "ledger/clock.h"

#include <cstddef>
#include <functional>

namespace mqledger {

class db_pool;
class engine;
class metrics;
class readiness_monitor;

/// GET /healthz, /readyz and /metrics (API.md "Operations"); they need no token.
void add_ops_routes(http::router& r, const readiness_monitor& readiness, const metrics& m);

/// Fires every timer due up to `now`, in due order, and returns how many fired.
using fire_due_fn = std::function<std::size_t(time_point now)>;

/// GET and POST /v1/clock (API.md "Clock"); registered only with --clock manual, so the routes
/// are 404 otherwise. `fire_due` runs after the clock moved, before the answer; empty = none.
void add_clock_routes(http::router& r, manual_clock& clock, fire_due_fn fire_due);

/// Runs blocking work (database reads, waiting for a commit) off the I/O threads.
using run_blocking_fn = std::function<void(std::function<void()>)>;

/// Every route of API.md "Accounts", "Instances" and "Ledger".
void add_api_routes(http::router& r, engine& eng, db_pool& reads, run_blocking_fn run, const mqledger::clock& clk);

} // namespace mqledger
