-- Rollups updated incrementally from each batch's new raw rows instead of recomputed from the raw
-- rows of every touched bucket: a bucket keeps its `sum` (so a merge adds sums and counts, and
-- `avg` = sum / count) and the sample time of its `last` value (`last_time`), so a late sample
-- older than the bucket's last one never overwrites it.
ALTER TABLE metric_rollups_1m ADD COLUMN sum double precision, ADD COLUMN last_time timestamptz;
ALTER TABLE metric_rollups_1h ADD COLUMN sum double precision, ADD COLUMN last_time timestamptz;

-- Existing rows: the sum from the mean; the time of the last value from the raw rows while they
-- are kept (the newest raw row of the series in the bucket), else the bucket's end, so a sample
-- arriving for a bucket whose raw rows are gone (none can: it is past the rollup horizon) would
-- not replace `last`.
UPDATE metric_rollups_1m r SET sum = r.avg * r.count, last_time = COALESCE(
    CASE
        WHEN r.metric IN ('disk_percent', 'disk_used_bytes') THEN (
            SELECT max(d.time) FROM metric_disks d
            WHERE d.server_id = r.server_id AND d.mount = r.label
              AND d.time >= r.bucket AND d.time < r.bucket + INTERVAL '1 minute')
        WHEN r.metric IN ('net_tx_bytes_per_s', 'net_rx_bytes_per_s') THEN (
            SELECT max(i.time) FROM metric_interfaces i
            WHERE i.server_id = r.server_id AND i.interface = r.label
              AND i.time >= r.bucket AND i.time < r.bucket + INTERVAL '1 minute')
        ELSE (
            SELECT max(m.time) FROM metrics m
            WHERE m.server_id = r.server_id
              AND m.time >= r.bucket AND m.time < r.bucket + INTERVAL '1 minute')
    END,
    r.bucket + INTERVAL '1 minute' - INTERVAL '1 microsecond');

UPDATE metric_rollups_1h h SET sum = h.avg * h.count, last_time = COALESCE(
    (SELECT max(r.last_time) FROM metric_rollups_1m r
     WHERE r.server_id = h.server_id AND r.metric = h.metric AND r.label = h.label
       AND r.bucket >= h.bucket AND r.bucket < h.bucket + INTERVAL '1 hour'),
    h.bucket + INTERVAL '1 hour' - INTERVAL '1 microsecond');

ALTER TABLE metric_rollups_1m ALTER COLUMN sum SET NOT NULL, ALTER COLUMN last_time SET NOT NULL;
ALTER TABLE metric_rollups_1h ALTER COLUMN sum SET NOT NULL, ALTER COLUMN last_time SET NOT NULL;
