-- idempotency_keys is append-only, so a client's key that held personal data (clients may send
-- any text, an email too) could never be erased with its subject. From now on only a SHA-256 of
-- the key is stored (`stored_key` in infra/src/event_store/append.rs, the same formula as
-- here); the rows written before are brought to that form once, here, by the table's owner:
-- the one time the append-only rule is lifted, for this table, not for the log.
ALTER TABLE idempotency_keys DISABLE TRIGGER idempotency_keys_append_only;
UPDATE idempotency_keys
   SET key = 'sha256:' || encode(sha256(convert_to('adledger idempotency key' || E'\n' || key, 'UTF8')), 'hex');
ALTER TABLE idempotency_keys ENABLE TRIGGER idempotency_keys_append_only;
