-- 0004: units of work (ledger/unit.h). A unit asks its view for the instances an account
-- notice concerns; the rules core answers (`notice_of`) and the projector records the answer,
-- so the daemon loads only them:
--   instance_state.account_notice  'overdue' (a bill that leaves the account owing starts its
--                                  overdue path), 'paid' (a payment restores it), or NULL.
-- (An account's instances with a timer due are found through instance_state.account_id and the
-- timers, which are the core's `deadlines`.)
-- The instance snapshot also gained a field, so the projection rows are emptied here; the daemon
-- rebuilds them from the log when it starts (as `mqledger rebuild` does). Never edit once
-- released: add a new numbered file instead.
TRUNCATE instance_state, timers, accounts, instance_counts;
DELETE FROM projection_checkpoint WHERE name = 'projections';

ALTER TABLE instance_state ADD COLUMN account_notice text CHECK (account_notice IN ('overdue', 'paid'));
