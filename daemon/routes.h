// The API's routes, grouped by area; serve.cpp registers each group on the one router.
// Each group is a function of the router and the few services it needs (no Application&).
#pragma once

#include "daemon/router.h"

#include "ledger/clock.h"

#include <cstddef>
#include <functional>

namespace mqledger {

namespace store {
class digest_signer;
class tile_cache;
} // namespace store

class db_pool;
class transparency;
class engine;
class metrics;
class readiness_monitor;
class policy_registry;

/// Runs blocking work (database reads, waiting for a commit) off the I/O threads.
using run_blocking_fn = std::function<void(std::function<void()>)>;

/// GET /healthz, /readyz and /metrics (API.md "Operations"); they need no token. `/readyz` is
/// 200 only once the database is ready and `caught_up()` (the start-up timer catch-up is done;
/// empty = always); /metrics is rendered through `run` (its scrape reads the database; empty =
/// on the calling thread).
void add_ops_routes(http::router& r, const readiness_monitor& readiness, const metrics& m,
                    std::function<bool()> caught_up = {}, run_blocking_fn run = {});

/// Fires every timer due up to `now`, in due order, and returns how many fired.
using fire_due_fn = std::function<std::size_t(time_point now)>;

/// GET and POST /v1/clock (API.md "Clock"); registered only with --clock manual, so the routes
/// are 404 otherwise. `fire_due` runs after the clock moved, before the answer; empty = none.
void add_clock_routes(http::router& r, manual_clock& clock, fire_due_fn fire_due, run_blocking_fn run = {});

/// Every route of API.md "Accounts", "Instances" and "Ledger".
/// `signer` (may be null) signs the digest `GET /v1/ledger/head` answers.
/// `tiles` (may be null) keeps the Merkle tiles that `?proofs=true` reads.
void add_api_routes(http::router& r, engine& eng, db_pool& reads, run_blocking_fn run, const mqledger::clock& clk,
                    const store::digest_signer* signer = nullptr, store::tile_cache* tiles = nullptr);

/// GET /v1/policy[?version=N] (issue 15): the table in force, or an older version, with its
/// version and SHA-256; `in_force` says which.
void add_policy_routes(http::router& r, const policy_registry& policies, run_blocking_fn run);

/// The Merkle tree's routes (README.md "HTTP API", issue 14): GET /v1/ledger/checkpoint,
/// GET /v1/proofs/inclusion, GET /v1/proofs/consistency, POST /v1/ledger/checkpoint/cosignatures.
void add_transparency_routes(http::router& r, transparency& t, db_pool& reads, run_blocking_fn run, metrics& m);

/// GET /v1/openapi.json: docs/openapi.yaml as JSON (compiled in); open, like /healthz.
void add_docs_routes(http::router& r);

} // namespace mqledger
