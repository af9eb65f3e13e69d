-- Per-subject data keys for crypto-shredding (DESIGN.md, property 8). Personal data in events is
-- sealed under its subject's key; erasing the key (wrapped_key = NULL) makes every copy unreadable
-- while the log stays immutable. A row is never deleted: it is the proof of erasure and stops a
-- new key from being made for an erased subject.
CREATE TABLE subject_keys (
    subject_id   uuid        PRIMARY KEY,
    -- The data key sealed under a master key: `v1.<kid>.<nonce>.<ciphertext>` (infra::crypto).
    wrapped_key  text,
    master_kid   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz,
    CONSTRAINT subject_keys_live_or_erased CHECK (
        (erased_at IS NULL AND wrapped_key IS NOT NULL AND master_kid IS NOT NULL)
        OR (erased_at IS NOT NULL AND wrapped_key IS NULL AND master_kid IS NULL)
    )
);
-- Re-wrapping after a master key rotation looks for keys under older master keys.
CREATE INDEX subject_keys_master_kid_idx ON subject_keys (master_kid) WHERE erased_at IS NULL;

REVOKE ALL ON subject_keys FROM adledger_app;
GRANT SELECT, INSERT, UPDATE ON subject_keys TO adledger_app;
