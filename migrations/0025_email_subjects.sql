-- Personal data about someone who may have no account yet (an invited email address) is sealed
-- under a subject of that address: `email_subjects` maps a keyed hash of the normalized address
-- (HMAC-SHA256 under a data key kept in `subject_keys`, never the address) to a random subject
-- id. Erasing the person erases that subject's key and deletes the row, so an address typed
-- again afterwards starts a new subject and nothing here links the erased one to it.
CREATE TABLE email_subjects (
    email_digest  text        PRIMARY KEY,
    subject_id    uuid        NOT NULL CONSTRAINT email_subjects_subject_key UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

REVOKE ALL ON email_subjects FROM adledger_app;
GRANT SELECT, INSERT, DELETE ON email_subjects TO adledger_app;

-- Erasure looks up what a person left in other subjects' keys: API keys they created and
-- invitations sealed under their own id before email subjects existed. Both are rare events;
-- a partial index keeps that lookup off a scan of the whole log.
CREATE INDEX events_erasure_links_idx ON events (event_type)
    WHERE event_type IN ('MemberInvited', 'ApiKeyCreated');
