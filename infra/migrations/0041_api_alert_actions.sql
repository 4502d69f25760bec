-- API: who acknowledged or resolved an alert episode by hand. The alert store's merge never
-- undoes a resolution, so a manual resolve stays resolved when the engine's events arrive later.
ALTER TABLE alerts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by uuid,
    ADD COLUMN resolved_by     uuid;
