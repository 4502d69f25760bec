-- Which ingest process holds each server's agent socket (one row per connected server), and
-- which ingest process answered a command that no process could deliver.
--
-- Written only by ingest. A row is inserted (or taken over: the newest socket wins) when an agent
-- authenticates, `seen_at` is refreshed every few seconds by the process holding it, and the row
-- is deleted when that very connection ends. A row whose `seen_at` is older than three refresh
-- intervals belongs to a process that died: treat the server as not connected.

CREATE TABLE agent_connections (
    server_id     uuid PRIMARY KEY REFERENCES servers (id) ON DELETE CASCADE,
    ingest_id     text NOT NULL,
    connection_id uuid NOT NULL,
    key_id        uuid NOT NULL,
    remote        text,
    since         timestamptz NOT NULL,
    seen_at       timestamptz NOT NULL
);
CREATE INDEX agent_connections_ingest_idx ON agent_connections (ingest_id);

-- Every ingest process reads every command; when none holds the server's socket, exactly one of
-- them (the one whose insert wins) answers the command as failed. Rows older than a day are purged.
CREATE TABLE command_claims (
    command_id uuid PRIMARY KEY,
    ingest_id  text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX command_claims_claimed_idx ON command_claims (claimed_at);
