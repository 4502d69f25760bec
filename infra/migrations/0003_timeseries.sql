-- Time series, one row per sample and per disk / interface, so analysts query plain columns.
-- Natural keys make replays idempotent: writers use INSERT ... ON CONFLICT DO NOTHING.

CREATE TABLE metrics (
    server_id          uuid NOT NULL,
    time               timestamptz NOT NULL,
    cpu_percent        double precision NOT NULL,
    memory_percent     double precision NOT NULL,
    memory_total_bytes bigint,
    memory_used_bytes  bigint,
    load1              double precision,
    load5              double precision,
    load15             double precision,
    uptime_seconds     bigint,
    cpu_cores          integer,
    received_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, time)
);
SELECT create_hypertable('metrics', by_range('time', INTERVAL '1 day'));

CREATE TABLE metric_disks (
    server_id   uuid NOT NULL,
    time        timestamptz NOT NULL,
    mount       text NOT NULL,
    total_bytes bigint NOT NULL,
    used_bytes  bigint NOT NULL,
    free_bytes  bigint NOT NULL,
    percent     double precision NOT NULL,
    PRIMARY KEY (server_id, mount, time)
);
SELECT create_hypertable('metric_disks', by_range('time', INTERVAL '1 day'));

-- Counters as reported (cumulative since boot); rates are derived (see docs/schema.md).
CREATE TABLE metric_interfaces (
    server_id    uuid NOT NULL,
    time         timestamptz NOT NULL,
    interface    text NOT NULL,
    bytes_sent   bigint NOT NULL,
    bytes_recv   bigint NOT NULL,
    packets_sent bigint,
    packets_recv bigint,
    errors_in    bigint,
    errors_out   bigint,
    PRIMARY KEY (server_id, interface, time)
);
SELECT create_hypertable('metric_interfaces', by_range('time', INTERVAL '1 day'));

CREATE TABLE logs (
    server_id   uuid NOT NULL,
    time        timestamptz NOT NULL,
    entry_id    uuid NOT NULL,
    level       text NOT NULL,
    source      text,
    message     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, time, entry_id)
);
SELECT create_hypertable('logs', by_range('time', INTERVAL '1 day'));
CREATE INDEX logs_server_level_time_idx ON logs (server_id, level, time DESC);
