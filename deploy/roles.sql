-- The roles every mqledger database cluster needs (cluster-wide, so once per cluster): the
-- NOLOGIN group role mqledger_app the migrations grant to, and the daemon's LOGIN role mqledger,
-- a member of it. Idempotent. Run by deploy/pg.sh (the embedded server) and deploy/ha/cluster.sh
-- (the Patroni cluster of the failover test); the migrations create mqledger_app too, and
-- tolerate it existing.
SET client_min_messages = warning;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mqledger_app') THEN
    CREATE ROLE mqledger_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mqledger') THEN
    CREATE ROLE mqledger LOGIN;
  END IF;
END $$;
GRANT mqledger_app TO mqledger;
