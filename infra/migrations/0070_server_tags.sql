-- Server tags: free-form labels an owner gives a server ("prod", "eu"). The fleet view and the
-- servers list filter on them (`tags @> ARRAY[...]`, served by the GIN index). Bounded by the API
-- (at most 32 tags of at most 64 characters, no spaces or commas).
ALTER TABLE servers ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX servers_tags_idx ON servers USING gin (tags);
