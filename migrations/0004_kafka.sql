-- The Kafka relay and Kafka-mode projection workers (DESIGN.md, "Kafka").

-- How far the relay has published the log to a topic: every event up to `position` was delivered.
CREATE TABLE relay_checkpoints (
    topic             text        PRIMARY KEY,
    position          bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
    events_published  bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Kafka-mode projection progress, one row per (projection, topic, partition). A worker writes it
-- in the same transaction as the read-model rows, fenced on `next_offset` and on its lease, so a
-- stale owner of the partition cannot apply a batch twice. `last_position` drops duplicates the
-- relay re-sent. Partitions are leased to workers here, in Postgres, next to the offsets.
CREATE TABLE projection_offsets (
    projection      text        NOT NULL,
    topic           text        NOT NULL,
    partition       integer     NOT NULL CHECK (partition >= 0),
    next_offset     bigint      NOT NULL DEFAULT 0 CHECK (next_offset >= 0),
    last_position   bigint      NOT NULL DEFAULT 0,
    events_applied  bigint      NOT NULL DEFAULT 0,
    -- The worker holding the partition (host:pid), until `lease_until`.
    owner           text,
    lease_until     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projection_offsets_pkey PRIMARY KEY (projection, topic, partition)
);

-- Kafka-mode workers alive per projection and topic: each shares out the partitions by the count
-- of workers seen within its lease time.
CREATE TABLE kafka_workers (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    worker      text        NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kafka_workers_pkey PRIMARY KEY (projection, topic, worker)
);
