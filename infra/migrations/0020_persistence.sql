-- Persistence processors: connection events, command history, rollups and the offsets seam.
-- Every table has a natural key so a replayed Kafka batch adds no row (see docs/schema.md).

-- The highest Kafka offset (inclusive) of each topic partition whose messages are in the
-- database. Written in the same transaction as the rows, so "offset <= persisted_offset" means
-- "this message's rows are committed" (or it was dead-lettered): the live sockets use it as the
-- exact seam between database history and live Kafka data.
CREATE TABLE persisted_offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    last_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Every agent connection event, as ingest published it.
CREATE TABLE agent_events (
    server_id     uuid NOT NULL,
    time          timestamptz NOT NULL,
    event_id      uuid NOT NULL,
    event         text NOT NULL CHECK (event IN ('connected', 'disconnected', 'auth_failed')),
    connection_id uuid,
    ingest_id     text,
    dialect       text,
    reason        text,
    remote        text,
    superseded    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (server_id, time, event_id)
);
SELECT create_hypertable('agent_events', by_range('time', INTERVAL '7 days'));

-- The connection that currently speaks for each server: a disconnect of an older socket (one
-- superseded by a newer connection) never marks the server offline.
CREATE TABLE server_presence (
    server_id     uuid PRIMARY KEY,
    connection_id uuid,
    connected     boolean NOT NULL,
    event_time    timestamptz NOT NULL
);

-- One row per remote command: the API inserts the request columns when it publishes the
-- command; the persistence processor upserts the result columns on command_id when the result
-- arrives (in either order: the request columns are nullable for a result that comes first).
CREATE TABLE command_history (
    command_id         uuid PRIMARY KEY,
    server_id          uuid NOT NULL,
    requested_by       uuid,
    action             text CHECK (action IN ('shell', 'start', 'stop', 'restart', 'logs')),
    command            text,
    container_id       text,
    requested_at       timestamptz,
    success            boolean,
    output             text,
    error              text,
    exit_code          integer,
    duration_ms        bigint,
    message            text,
    logs               text[],
    finished_at        timestamptz,
    result_received_at timestamptz
);
CREATE INDEX command_history_server_idx ON command_history (server_id, requested_at DESC);

-- Rollups per server, metric and label (a disk's mount, an interface's name, '' otherwise),
-- recomputed from the raw rows of every bucket a batch touches, so late and replayed samples
-- leave them equal to SQL over the raw rows. Network rates are bytes per second derived from
-- consecutive counter samples; a counter that went down is a reset and yields no rate.
CREATE TABLE metric_rollups_1m (
    server_id uuid NOT NULL,
    metric    text NOT NULL,
    label     text NOT NULL DEFAULT '',
    bucket    timestamptz NOT NULL,
    avg       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    last      double precision NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (server_id, metric, label, bucket)
);
SELECT create_hypertable('metric_rollups_1m', by_range('bucket', INTERVAL '7 days'));

CREATE TABLE metric_rollups_1h (LIKE metric_rollups_1m INCLUDING ALL);
SELECT create_hypertable('metric_rollups_1h', by_range('bucket', INTERVAL '90 days'));
