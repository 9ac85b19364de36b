-- 0001: the append-only, hash-chained event log (DESIGN.md "Event store", API.md "The table").
-- Applied by `mqledger migrate` inside one transaction; never edit once released (the runner
-- refuses a changed checksum): add a new numbered file instead.

-- The daemon's group role: SELECT and INSERT on the log, nothing else. The LOGIN role the daemon
-- connects as is made a member of it by the operator (deploy/pg.sh does it for the embedded
-- cluster). Roles are cluster-wide, so another database's migration may create it concurrently.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mqledger_app') THEN
    CREATE ROLE mqledger_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END $$;

CREATE TABLE events (
  -- Global order, assigned by the store as head + 1 under an advisory lock (gapless; not a
  -- sequence, whose values can be lost on rollback).
  position        bigint      PRIMARY KEY CHECK (position > 0),
  stream          text        NOT NULL CHECK (stream <> '' AND stream !~ '[[:cntrl:]]'),
  stream_version  bigint      NOT NULL CHECK (stream_version > 0),
  type            text        NOT NULL CHECK (type <> '' AND type !~ '[[:cntrl:]]'),
  data            jsonb       NOT NULL CHECK (jsonb_typeof(data) = 'object'),
  metadata        jsonb       NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
  effective_at    timestamptz NOT NULL,
  recorded_at     timestamptz NOT NULL,
  -- 64 lower-case hex digits. (Written as length + negated class: '^[0-9a-f]{64}$' costs ~8 µs
  -- per row in PostgreSQL's regex engine, a third of the insert's cost.)
  prev_hash       text        NOT NULL CHECK (octet_length(prev_hash) = 64 AND prev_hash !~ '[^0-9a-f]'),
  hash            text        NOT NULL CHECK (octet_length(hash) = 64 AND hash !~ '[^0-9a-f]'),
  -- Set on the first event of a keyed append only, with the request's fingerprint and the number
  -- of events that append wrote (its events are positions position .. position + append_count - 1),
  -- so a repeat can be answered with the first result. Not part of the hash: the daemon also
  -- records the key in metadata, which is.
  idempotency_key         text,
  idempotency_fingerprint text,
  append_count            integer,
  CONSTRAINT events_stream_version_key UNIQUE (stream, stream_version),
  CONSTRAINT events_idempotency_complete CHECK (
    (idempotency_key IS NULL AND idempotency_fingerprint IS NULL AND append_count IS NULL)
    OR (idempotency_key IS NOT NULL AND idempotency_fingerprint IS NOT NULL AND append_count > 0))
);

-- (stream, stream_version) is served by the unique constraint's index: reading a stream and
-- finding its current version are index scans. The global feed uses the primary key.
CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key)
  WHERE idempotency_key IS NOT NULL;

-- Append-only: refuse UPDATE, DELETE and TRUNCATE for everyone, owner included. (A superuser can
-- still bypass triggers; the hash chain is what catches that.)
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'corrections are new events, never edits';
END $$;

CREATE TRIGGER events_no_update_delete
  BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
  BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

REVOKE ALL ON events FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO mqledger_app;
GRANT SELECT, INSERT ON events TO mqledger_app;
GRANT SELECT ON schema_migrations TO mqledger_app;
