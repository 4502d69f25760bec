-- A read-only role for analysts and the views they query (docs/analysts.md).
-- Roles are cluster-wide: created once, tolerating a concurrent creator.
DO $$
BEGIN
    CREATE ROLE fleetpulse_analyst NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- Servers with their owner's name; never the owner's password hash.
CREATE VIEW analyst_servers AS
SELECT s.id AS server_id, s.name AS server_name, s.host, s.status, s.last_seen, s.created_at,
       u.id AS owner_id, u.username AS owner_username, u.email AS owner_email
FROM servers s JOIN users u ON u.id = s.owner_id;

CREATE VIEW analyst_metrics AS
SELECT m.time, a.server_id, a.server_name, a.owner_username, m.cpu_percent, m.memory_percent,
       m.memory_total_bytes, m.memory_used_bytes, m.load1, m.load5, m.load15, m.uptime_seconds,
       m.cpu_cores
FROM metrics m JOIN analyst_servers a ON a.server_id = m.server_id;

CREATE VIEW analyst_disks AS
SELECT d.time, a.server_id, a.server_name, a.owner_username, d.mount, d.total_bytes,
       d.used_bytes, d.free_bytes, d.percent
FROM metric_disks d JOIN analyst_servers a ON a.server_id = d.server_id;

CREATE VIEW analyst_interfaces AS
SELECT i.time, a.server_id, a.server_name, a.owner_username, i.interface, i.bytes_sent,
       i.bytes_recv, i.packets_sent, i.packets_recv, i.errors_in, i.errors_out
FROM metric_interfaces i JOIN analyst_servers a ON a.server_id = i.server_id;

CREATE VIEW analyst_rollups_1m AS
SELECT r.bucket, a.server_id, a.server_name, a.owner_username, r.metric, r.label, r.avg, r.min,
       r.max, r.last, r.count
FROM metric_rollups_1m r JOIN analyst_servers a ON a.server_id = r.server_id;

CREATE VIEW analyst_rollups_1h AS
SELECT r.bucket, a.server_id, a.server_name, a.owner_username, r.metric, r.label, r.avg, r.min,
       r.max, r.last, r.count
FROM metric_rollups_1h r JOIN analyst_servers a ON a.server_id = r.server_id;

CREATE VIEW analyst_logs AS
SELECT l.time, a.server_id, a.server_name, a.owner_username, l.level, l.source, l.message
FROM logs l JOIN analyst_servers a ON a.server_id = l.server_id;

CREATE VIEW analyst_agent_events AS
SELECT e.time, a.server_id, a.server_name, a.owner_username, e.event, e.reason, e.superseded,
       e.dialect
FROM agent_events e JOIN analyst_servers a ON a.server_id = e.server_id;

CREATE VIEW analyst_commands AS
SELECT c.command_id, a.server_id, a.server_name, a.owner_username, c.action, c.command,
       c.container_id, c.requested_at, c.success, c.exit_code, c.duration_ms, c.finished_at
FROM command_history c JOIN analyst_servers a ON a.server_id = c.server_id;

-- Read only: the views (which run with their owner's rights) and nothing else.
GRANT USAGE ON SCHEMA public TO fleetpulse_analyst;
GRANT SELECT ON analyst_servers, analyst_metrics, analyst_disks, analyst_interfaces,
    analyst_rollups_1m, analyst_rollups_1h, analyst_logs, analyst_agent_events, analyst_commands
    TO fleetpulse_analyst;

-- Alert episodes. The `alerts` table belongs to the alert engine's migration, which runs after
-- this one, so the view reads it through a late-bound function: it resolves `alerts` when it
-- is called, and runs with its owner's rights to expose only these columns.
CREATE FUNCTION analyst_alert_episodes()
RETURNS TABLE (episode_id uuid, server_id uuid, rule_name text, metric text, severity text,
               state text, started_at timestamptz, fired_at timestamptz, resolved_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY
        SELECT a.episode_id, a.server_id, a.rule_name, a.metric, a.severity, a.state,
               a.started_at, a.fired_at, a.resolved_at
        FROM alerts a;
END
$$;
REVOKE ALL ON FUNCTION analyst_alert_episodes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analyst_alert_episodes() TO fleetpulse_analyst;

CREATE VIEW analyst_alerts AS
SELECT e.episode_id, e.started_at, e.fired_at, e.resolved_at, s.server_id, s.server_name,
       s.owner_username, e.rule_name, e.metric, e.severity, e.state
FROM analyst_alert_episodes() e JOIN analyst_servers s ON s.server_id = e.server_id;
GRANT SELECT ON analyst_alerts TO fleetpulse_analyst;
