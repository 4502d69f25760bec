-- The TimescaleDB extension (Apache-2 edition: hypertables, time_bucket, drop_chunks).
CREATE EXTENSION IF NOT EXISTS timescaledb;
