-- Identity state that the command side keeps beside the log. The facts (registration, logins,
-- memberships, API keys) are events; these tables are what a request must check at once and
-- what must be forgettable: sessions and refresh tokens rotate on every use, an erased user's
-- email must disappear, an API key's last use changes on every call.

-- Email → user, for logins and the uniqueness of emails (stored lowercased). Erasure deletes
-- the row, so the address appears nowhere once its owner is erased.
CREATE TABLE users (
    user_id     uuid        PRIMARY KEY,
    email       text        NOT NULL CONSTRAINT users_email_key UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per login; its refresh tokens are one family, revoked together.
CREATE TABLE sessions (
    session_id      uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Refresh tokens, by SHA-256 only. A token is used once; presenting a used one again revokes
-- its whole session (it was stolen, or its thief already used it).
CREATE TABLE refresh_tokens (
    token_hash  text        PRIMARY KEY,
    session_id  uuid        NOT NULL REFERENCES sessions ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- API keys by id, for authenticating machine clients (the key is `adl_ak_<id>_<secret>`).
CREATE TABLE api_keys (
    api_key_id    uuid        PRIMARY KEY,
    workspace_id  uuid        NOT NULL,
    key_hash      text        NOT NULL,
    scope         text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id);

-- Failed logins per email (a SHA-256 of the lowercased address, never the address), whether or
-- not an account has it, so that the answer for an unknown email and a wrong password stays the
-- same.
CREATE TABLE login_failures (
    email           text        PRIMARY KEY,
    failures        integer     NOT NULL,
    last_failed_at  timestamptz NOT NULL,
    locked_until    timestamptz
);

-- Read model (catalog projection): who belongs to which workspace, with which role.
CREATE TABLE workspace_members (
    workspace_id  uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    role          text        NOT NULL,
    joined_at     timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);
