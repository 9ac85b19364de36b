-- 0005: the Merkle tree over the log and its signed checkpoints (issue 14; README.md "For
-- auditors: Merkle proofs and checkpoints"; ledger/store/merkle.h, ledger/store/checkpoint.h).
--
-- merkle_tiles   the tree's hashes as C2SP tlog-tiles of height 8: the row (level, idx) holds
--                the hashes of the complete subtrees of height 8*level with indices
--                256*idx .. 256*idx + width - 1, 32 raw bytes each (level 0: the leaf hashes,
--                SHA-256(0x00 || the event's hash)). A tile only grows, and a hash once stored
--                never changes, so the current tiles answer proofs for every older tree size.
-- merkle_tree    one row: how many leaves (positions 1..size) the tiles hold.
-- checkpoints    every signed checkpoint (C2SP signed note) and the witness co-signature lines
--                collected for it.
--
-- The daemon extends the tree after the events are committed, not in the append transaction
-- (README.md says why). Never edit once released: add a new numbered file instead.
CREATE TABLE merkle_tiles (
  level   smallint NOT NULL CHECK (level BETWEEN 0 AND 7),
  idx     bigint   NOT NULL CHECK (idx >= 0),
  hashes  bytea    NOT NULL CHECK (octet_length(hashes) BETWEEN 32 AND 8192 AND octet_length(hashes) % 32 = 0),
  PRIMARY KEY (level, idx)
);

CREATE TABLE merkle_tree (
  id    boolean PRIMARY KEY DEFAULT true CHECK (id),
  size  bigint  NOT NULL CHECK (size >= 0)
);
INSERT INTO merkle_tree (size) VALUES (0);

CREATE TABLE checkpoints (
  tree_size     bigint      PRIMARY KEY CHECK (tree_size >= 0),
  root          bytea       NOT NULL CHECK (octet_length(root) = 32),
  note          text        NOT NULL,
  created_at    timestamptz NOT NULL,
  cosignatures  text[]      NOT NULL DEFAULT '{}'
);

-- What the daemon's role may do is only ever to extend: a tile's hashes may grow but never
-- change, the tree never shrinks, a checkpoint only gains co-signatures. (A superuser can still
-- bypass triggers; the signed checkpoints an auditor keeps are what catches that.)
CREATE FUNCTION merkle_only_extends() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION 'the Merkle tree and its checkpoints are append-only: % on % refused', TG_OP, TG_TABLE_NAME
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_TABLE_NAME = 'merkle_tiles' THEN
    IF NEW.level <> OLD.level OR NEW.idx <> OLD.idx
       OR substring(NEW.hashes FROM 1 FOR octet_length(OLD.hashes)) <> OLD.hashes THEN
      RAISE EXCEPTION 'a Merkle tile may only grow' USING ERRCODE = 'insufficient_privilege';
    END IF;
  ELSIF TG_TABLE_NAME = 'merkle_tree' THEN
    IF NEW.size < OLD.size THEN
      RAISE EXCEPTION 'the Merkle tree may not shrink' USING ERRCODE = 'insufficient_privilege';
    END IF;
  ELSIF TG_TABLE_NAME = 'checkpoints' THEN
    IF NEW.tree_size <> OLD.tree_size OR NEW.root <> OLD.root OR NEW.note <> OLD.note
       OR NEW.created_at <> OLD.created_at
       OR NEW.cosignatures[1:cardinality(OLD.cosignatures)] IS DISTINCT FROM OLD.cosignatures THEN
      RAISE EXCEPTION 'a checkpoint may only gain co-signatures' USING ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER merkle_tiles_only_extend BEFORE UPDATE OR DELETE ON merkle_tiles
  FOR EACH ROW EXECUTE FUNCTION merkle_only_extends();
CREATE TRIGGER merkle_tree_only_extends BEFORE UPDATE OR DELETE ON merkle_tree
  FOR EACH ROW EXECUTE FUNCTION merkle_only_extends();
CREATE TRIGGER checkpoints_only_extend BEFORE UPDATE OR DELETE ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION merkle_only_extends();
CREATE TRIGGER merkle_no_truncate BEFORE TRUNCATE ON merkle_tiles
  FOR EACH STATEMENT EXECUTE FUNCTION merkle_only_extends();
CREATE TRIGGER merkle_tree_no_truncate BEFORE TRUNCATE ON merkle_tree
  FOR EACH STATEMENT EXECUTE FUNCTION merkle_only_extends();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION merkle_only_extends();

REVOKE ALL ON merkle_tiles, merkle_tree, checkpoints FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON merkle_tiles, merkle_tree, checkpoints TO mqledger_app;
