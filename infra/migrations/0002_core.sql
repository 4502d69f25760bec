-- Accounts, servers and the agents' API keys.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    username      text NOT NULL,
    full_name     text,
    password_hash text NOT NULL,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE servers (
    id                uuid PRIMARY KEY,
    owner_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              text NOT NULL,
    host              text,
    port              integer CHECK (port BETWEEN 1 AND 65535),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Kept true by the persistence processor from the agents' connection events.
    status            text NOT NULL DEFAULT 'unknown' CHECK (status IN ('online', 'offline', 'stale', 'unknown')),
    last_seen         timestamptz,
    -- Remote commands are off until an owner turns them on; the allowlist holds regex patterns.
    commands_enabled  boolean NOT NULL DEFAULT false,
    command_allowlist text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX servers_owner_idx ON servers (owner_id);

-- A key is `fpk_<lookup_id>_<secret>`; only the lookup id and HMAC-SHA256(pepper, secret) are kept.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    lookup_id   text NOT NULL UNIQUE,
    secret_hash bytea NOT NULL,
    name        text,
    is_active   boolean NOT NULL DEFAULT true,
    expires_at  timestamptz,
    revoked_at  timestamptz,
    last_used   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_server_idx ON api_keys (server_id);
