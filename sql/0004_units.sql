-- 0004: units of work (ledger/unit.h). A unit asks its view for an account's instances with a
-- timer due and for those an account notice concerns; the rules core answers both (`deadlines`,
-- `notice_of`), and the projector records the answers per account so the daemon loads only them:
--   timers.account_id            the instance's account; with due_at, an account's due timers;
--   instance_state.account_notice 'overdue' (a bill that leaves the account owing starts its
--                                overdue path), 'paid' (a payment restores it), or NULL.
-- The instance snapshot also gained a field, so the projection rows are emptied here; the daemon
-- rebuilds them from the log when it starts (as `mqledger rebuild` does). Never edit once
-- released: add a new numbered file instead.
TRUNCATE instance_state, timers, accounts, instance_counts;
DELETE FROM projection_checkpoint WHERE name = 'projections';

ALTER TABLE timers ADD COLUMN account_id text NOT NULL;
CREATE INDEX timers_account_due_idx ON timers (account_id, due_at);

ALTER TABLE instance_state ADD COLUMN account_notice text CHECK (account_notice IN ('overdue', 'paid'));
