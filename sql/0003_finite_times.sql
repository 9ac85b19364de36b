-- Times in the log are instants. 'infinity' has no microsecond value for the hash pre-image, so a
-- row carrying it (inserted by hand: the daemon's role may INSERT) would make every reader and
-- the chain check fail instead of naming the bad row. Refuse it at the door.
ALTER TABLE events
    ADD CONSTRAINT events_times_finite CHECK (isfinite(effective_at) AND isfinite(recorded_at));
