-- Alerting: rules (as the API stores them; the engine reads them from the compacted rules topic),
-- alert episodes, the owners' notification channels and the delivery log.

-- `definition` is the rule as schemas.alerts.AlertRule JSON, exactly what goes on the topic.
CREATE TABLE alert_rules (
    id         uuid PRIMARY KEY,
    owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server_id  uuid REFERENCES servers (id) ON DELETE CASCADE,  -- NULL: all of the owner's servers
    origin     text NOT NULL DEFAULT 'rule' CHECK (origin IN ('rule', 'threshold', 'code')),
    enabled    boolean NOT NULL DEFAULT true,
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_rules_owner_idx ON alert_rules (owner_id);
CREATE INDEX alert_rules_server_idx ON alert_rules (server_id);

-- One row per episode, written from the alerts topic: idempotent on episode_id (a replayed event
-- changes nothing). No foreign keys: the history outlives deleted rules and servers.
CREATE TABLE alerts (
    episode_id     uuid PRIMARY KEY,
    rule_id        uuid NOT NULL,
    rule_name      text NOT NULL,
    origin         text NOT NULL,
    owner_id       uuid,
    server_id      uuid NOT NULL,
    metric         text NOT NULL,
    subject        text,
    severity       text NOT NULL,
    comparison     text NOT NULL,
    threshold      double precision NOT NULL,
    state          text NOT NULL CHECK (state IN ('firing', 'resolved')),
    started_at     timestamptz NOT NULL,
    fired_at       timestamptz,
    fired_value    double precision,
    resolved_at    timestamptz,
    resolved_value double precision,
    message        text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_server_time_idx ON alerts (server_id, started_at DESC);
CREATE INDEX alerts_owner_time_idx ON alerts (owner_id, started_at DESC);
CREATE INDEX alerts_firing_idx ON alerts (server_id) WHERE state = 'firing';

-- Where an owner's alerts go; server_id / rule_id narrow a channel, NULL means "all of mine".
CREATE TABLE notification_channels (
    id         uuid PRIMARY KEY,
    owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('webhook', 'slack')),
    url        text NOT NULL,
    secret     text,  -- the webhook's HMAC signing key
    server_id  uuid REFERENCES servers (id) ON DELETE CASCADE,
    rule_id    uuid REFERENCES alert_rules (id) ON DELETE CASCADE,
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_channels_owner_idx ON notification_channels (owner_id);

-- The delivery log, and the notifier's deduplication: one row per (channel, state change), and a
-- state change is sent again only while its row is not 'delivered'.
CREATE TABLE notification_deliveries (
    channel_id       uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    episode_id       uuid NOT NULL,
    state            text NOT NULL CHECK (state IN ('firing', 'resolved')),
    server_id        uuid NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    PRIMARY KEY (channel_id, event_id)
);
CREATE INDEX notification_deliveries_episode_idx ON notification_deliveries (episode_id);
CREATE INDEX notification_deliveries_channel_time_idx ON notification_deliveries (channel_id, created_at DESC);
