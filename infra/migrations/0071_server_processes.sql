-- The newest sample's top processes per server (top N by CPU and top N by memory, as ingest
-- kept them), upserted by the persistence processor: one row per server, never one row per
-- process and sample. A replayed or late older sample never replaces a newer one.
CREATE TABLE server_processes (
    server_id  uuid PRIMARY KEY,
    time       timestamptz NOT NULL,
    processes  jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
