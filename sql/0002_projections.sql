-- 0002: the projections (DESIGN.md "Projections", "Timers"; API.md instance and account views,
-- pending releases, `GET /v1/instances` filters and paging). Every row here follows from the log:
-- the projector (projections/projector.h) writes them in the append transaction, and
-- projections/rebuild.h can rebuild them from position 0 and prove them equal. Never edit once
-- released: add a new numbered file instead.

-- One row per instance: the columns the list filters and the instance view need, plus the
-- serialised core `instance_state` (projections/snapshot.h) so the daemon decides without
-- replaying the stream. Time-dependent view fields (`actions`) are computed at read time.
CREATE TABLE instance_state (
  instance_id          text        PRIMARY KEY,
  account_id           text        NOT NULL,
  product              text        NOT NULL,
  billing              text        NOT NULL,
  timezone             text        NOT NULL,
  state                text        NOT NULL,
  display_state        text        NOT NULL,
  service_available    boolean     NOT NULL,
  data_retained        boolean     NOT NULL,
  state_since          timestamptz NOT NULL,
  expires_at           timestamptz,
  -- API.md's `deadlines` object: each key only when it applies.
  deadlines            jsonb       NOT NULL CHECK (jsonb_typeof(deadlines) = 'object'),
  -- deadlines.release_at as a column, for the pending-releases listing (soonest first).
  release_at           timestamptz,
  force_delete_pending boolean     NOT NULL,
  last_effective_at    timestamptz NOT NULL,
  version              bigint      NOT NULL CHECK (version > 0),
  policy_version       integer     NOT NULL,
  snapshot             jsonb       NOT NULL CHECK (jsonb_typeof(snapshot) = 'object')
);

-- The list filters, each ending in instance_id so a filtered page (`WHERE state = $1 AND
-- instance_id > $cursor ORDER BY instance_id LIMIT n`) is one index range scan. Unfiltered
-- paging uses the primary key.
CREATE INDEX instance_state_state_idx   ON instance_state (state, instance_id);
CREATE INDEX instance_state_product_idx ON instance_state (product, instance_id);
CREATE INDEX instance_state_billing_idx ON instance_state (billing, instance_id);
CREATE INDEX instance_state_account_idx ON instance_state (account_id, instance_id);
CREATE INDEX instance_state_release_idx ON instance_state (release_at, instance_id) WHERE release_at IS NOT NULL;

-- The timers every instance's state implies (core `deadlines`), replaced whenever the instance
-- changes. The daemon reads the soonest by due_at.
CREATE TABLE timers (
  instance_id text        NOT NULL,
  kind        text        NOT NULL,
  due_at      timestamptz NOT NULL,
  PRIMARY KEY (instance_id, kind, due_at)
);
CREATE INDEX timers_due_at_idx ON timers (due_at);

-- One row per account (API.md account view) plus the serialised core `account_state`. An
-- account's instances are found through instance_state.account_id.
CREATE TABLE accounts (
  account_id        text        PRIMARY KEY,
  currency          text        NOT NULL,
  balance           bigint      NOT NULL,
  owed              bigint      NOT NULL CHECK (owed >= 0),
  overdue_since     timestamptz,
  last_effective_at timestamptz NOT NULL,
  version           bigint      NOT NULL CHECK (version > 0),
  snapshot          jsonb       NOT NULL CHECK (jsonb_typeof(snapshot) = 'object')
);

-- Instances per product, billing and state (the metrics gauge), kept equal to a GROUP BY over
-- instance_state; a combination with no instance has no row.
CREATE TABLE instance_counts (
  product text   NOT NULL,
  billing text   NOT NULL,
  state   text   NOT NULL,
  -- (>= 0 so an upsert may pass through zero; the projector deletes zero rows in the same batch)
  count   bigint NOT NULL CHECK (count >= 0),
  PRIMARY KEY (product, billing, state)
);

-- The last log position each projection has folded.
CREATE TABLE projection_checkpoint (
  name     text   PRIMARY KEY,
  position bigint NOT NULL CHECK (position >= 0)
);

-- API.md `GET /v1/releases/pending`: every instance with a projected release (the core's
-- view_deadlines: also RabbitMQ/MQTT in their first lapse state, after both phases, and a
-- pending force deletion), soonest first by release_at (the caller orders and filters `before`).
CREATE VIEW pending_releases AS
  SELECT instance_id, state, release_at,
         CASE WHEN force_delete_pending THEN 'force_delete' ELSE 'deadline' END AS cause
  FROM instance_state
  WHERE release_at IS NOT NULL;

REVOKE ALL ON instance_state, timers, accounts, instance_counts, projection_checkpoint, pending_releases FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON instance_state, timers, accounts, instance_counts, projection_checkpoint
  TO mqledger_app;
GRANT SELECT ON pending_releases TO mqledger_app;
