-- OAuth state beside the log. Tokens are credentials, not facts: they rotate, and disconnecting
-- must forget them, so they live here, sealed under the master keys (AES-256-GCM with a key id;
-- `adledger keys rewrap` re-encrypts them), never in an event.

-- A pending authorization: the `state` sent to the platform (stored as its SHA-256), bound to the
-- workspace and the person who started it, single use, expiring.
CREATE TABLE oauth_states (
    state_hash     text        PRIMARY KEY,
    workspace_id   uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    platform       text        NOT NULL,
    -- The PKCE verifier, sealed under the master keys (platforms without PKCE: NULL).
    pkce_verifier  text,
    -- Set when reconnecting an existing connection.
    connection_id  uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);

-- The current tokens of each connection: a sealed JSON document.
CREATE TABLE connection_credentials (
    connection_id  uuid        PRIMARY KEY,
    workspace_id   uuid        NOT NULL,
    platform       text        NOT NULL,
    sealed_tokens  text        NOT NULL,
    expires_at     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
