-- The RFC 6962 Merkle tree over the log (issue #12): leaf i is the event at position i+1, its
-- input that event's 32-byte chain hash (so the tree also commits to the chain). Every complete
-- subtree is stored once: node (level, idx) is the head of leaves [idx·2^level, (idx+1)·2^level),
-- level 0 the leaf hashes themselves, about two rows per event. A proof or a tree head then reads
-- O(log n) rows and never recomputes a subtree. Written only by the sequencer, in the
-- transaction that gives the events their positions; insert-only, like the log.
CREATE TABLE merkle_nodes (
    level  smallint NOT NULL CHECK (level >= 0 AND level < 63),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    hash   bytea    NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT merkle_nodes_pkey PRIMARY KEY (level, idx)
);

-- Signed tree heads (C2SP tlog-checkpoint notes), one per tree size: the first one signed for a
-- size is kept, so asking again never signs again. Kept so that a package or an auditor can name
-- a checkpoint issued earlier and so that rotation leaves old ones verifiable.
CREATE TABLE checkpoints (
    tree_size  bigint      PRIMARY KEY CHECK (tree_size >= 0),
    root       bytea       NOT NULL CHECK (length(root) = 32),
    note       text        NOT NULL,
    key_name   text        NOT NULL,
    key_id     text        NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION reject_log_mutation();
CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION reject_log_mutation();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION reject_log_mutation();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION reject_log_mutation();

REVOKE ALL ON merkle_nodes, checkpoints FROM adledger_app;
GRANT SELECT, INSERT ON merkle_nodes, checkpoints TO adledger_app;
