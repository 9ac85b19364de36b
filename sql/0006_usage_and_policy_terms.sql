-- 0006: usage records and run-time policy changes (issue 15). The instance snapshot gained
-- fields the fold now computes from the log: the lapse terms pinned when an instance entered its
-- state (`phase`), the usage records not yet billed and the record ids seen, and a billing
-- history kept back to the 35-day usage lookback (it used to end at the last settled cycle).
-- Snapshots written before lack them, so the projection rows are emptied here; the daemon
-- rebuilds them from the log when it starts (as `mqledger rebuild` does), and `verify`'s
-- projection check then agrees with a fresh rebuild. Never edit once released: add a new
-- numbered file instead.
TRUNCATE instance_state, timers, accounts, instance_counts;
DELETE FROM projection_checkpoint WHERE name = 'projections';
