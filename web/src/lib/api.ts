/**
 * Every REST call of the page, in one module (issue 16 will move lists to one cursor pagination
 * and errors to problem details: the switch happens here). Requests carry the access token;
 * a 401 refreshes it once and retries.
 */
import type { FleetRow } from "./fleet";
import { SessionEnded, type TokenAnswer, type TokenManager } from "./tokens";

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The `detail` of an error answer, as one readable line. */
export function errorText(body: unknown, status: number): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail))
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg ?? ""}`)
      .join("; ");
  return `HTTP ${status}`;
}

/** The refresher the token manager uses: a 401 means the session is over. */
export async function refreshTokens(refreshToken: string): Promise<TokenAnswer> {
  const res = await fetch(`${API}/auth/refresh`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: refreshToken }),
  });
  if (res.status === 401 || res.status === 403 || res.status === 422) throw new SessionEnded("signed out");
  if (!res.ok) throw new ApiError(res.status, `refresh failed: HTTP ${res.status}`);
  return (await res.json()) as TokenAnswer;
}

type Query = Record<string, string | number | boolean | null | undefined | string[]>;

function qs(query?: Query): string {
  if (!query) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

export class Client {
  constructor(readonly tokens: TokenManager) {}

  async request<T>(method: string, path: string, body?: unknown, query?: Query, retried = false): Promise<T> {
    const token = await this.tokens.access();
    const headers: Record<string, string> = { Accept: "application/json" };
    if (token) headers["Authorization"] = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(`${API}${path}${qs(query)}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    });
    if (res.status === 401 && token && !retried) {
      const fresh = await this.tokens.refresh(true).catch(() => null);
      if (fresh) return this.request<T>(method, path, body, query, true);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    const parsed: unknown = text ? JSON.parse(text) : null;
    if (!res.ok) throw new ApiError(res.status, errorText(parsed, res.status));
    return parsed as T;
  }

  /** Every item of a cursor-paged list (docs/api.md, pagination): its pages followed to the end. */
  async all<T>(path: string, query: Query = {}): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    do {
      const page: Page<T> = await this.get(path, { ...query, limit: 500, cursor });
      out.push(...page.items);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return out;
  }
  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, undefined, query);
  }
  post<T>(path: string, body?: unknown, query?: Query): Promise<T> {
    return this.request<T>("POST", path, body ?? {}, query);
  }
  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PUT", path, body);
  }
  del(path: string): Promise<void> {
    return this.request<void>("DELETE", path);
  }

  // --- accounts ----------------------------------------------------------------------------------
  async login(email: string, password: string): Promise<TokenAnswer> {
    return this.anonymous<TokenAnswer>("/auth/login/json", { email, password });
  }
  async register(email: string, username: string, password: string): Promise<TokenAnswer> {
    return this.anonymous<TokenAnswer>("/auth/register", {
      email,
      username,
      password,
      password_confirm: password,
    });
  }
  private async anonymous<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(`${API}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const parsed: unknown = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, errorText(parsed, res.status));
    return parsed as T;
  }
  logout(refreshToken: string): Promise<void> {
    return this.request<void>("POST", "/auth/logout", { refresh_token: refreshToken });
  }
  me(): Promise<User> {
    return this.get<User>("/auth/me");
  }

  // --- servers and fleet -------------------------------------------------------------------------
  fleet(): Promise<{ generated_at: string; truncated: boolean; servers: FleetRow[] }> {
    return this.get("/fleet");
  }
  servers(): Promise<Server[]> {
    return this.get("/servers");
  }
  server(id: string): Promise<Server> {
    return this.get(`/servers/${id}`);
  }
  createServer(body: { name: string; host?: string | null; tags?: string[] }): Promise<Server> {
    return this.post("/servers", body);
  }
  updateServer(
    id: string,
    body: Partial<{ name: string; host: string | null; tags: string[] }>,
  ): Promise<Server> {
    return this.put(`/servers/${id}`, body);
  }
  deleteServer(id: string): Promise<void> {
    return this.del(`/servers/${id}`);
  }
  setCommands(id: string, enabled: boolean, allowlist: string[]): Promise<Server> {
    return this.put(`/servers/${id}/commands`, { commands_enabled: enabled, command_allowlist: allowlist });
  }
  shares(id: string): Promise<Share[]> {
    return this.all(`/servers/${id}/shares`);
  }
  share(id: string, email: string, role: string): Promise<Share> {
    return this.post(`/servers/${id}/shares`, { email, role });
  }
  unshare(id: string, userId: string): Promise<void> {
    return this.del(`/servers/${id}/shares/${userId}`);
  }

  // --- keys --------------------------------------------------------------------------------------
  keys(serverId: string): Promise<ApiKey[]> {
    return this.get(`/api-keys/server/${serverId}`);
  }
  createKey(serverId: string, name: string | null): Promise<ApiKeyCreated> {
    return this.post("/api-keys", { server_id: serverId, name });
  }
  revokeKey(id: string): Promise<ApiKey> {
    return this.post(`/api-keys/${id}/deactivate`);
  }
  deleteKey(id: string): Promise<void> {
    return this.del(`/api-keys/${id}`);
  }

  // --- history -----------------------------------------------------------------------------------
  latest(serverId: string): Promise<Latest | null> {
    return this.get(`/metrics/${serverId}/latest`);
  }
  history(serverId: string, metric: string, start: Date, end: Date, resolution = "auto"): Promise<Series> {
    return this.get(`/metrics/${serverId}/history`, {
      metric,
      start: start.toISOString(),
      end: end.toISOString(),
      resolution,
    });
  }
  diskHistory(serverId: string, mount: string, start: Date, end: Date, resolution = "auto"): Promise<Series> {
    return this.get(`/metrics/${serverId}/disks/history`, {
      mount,
      metric: "percent",
      start: start.toISOString(),
      end: end.toISOString(),
      resolution,
    });
  }
  interfaceHistory(
    serverId: string,
    name: string,
    start: Date,
    end: Date,
    resolution = "auto",
  ): Promise<RateSeries> {
    return this.get(`/metrics/${serverId}/interfaces/history`, {
      interface: name,
      start: start.toISOString(),
      end: end.toISOString(),
      resolution,
    });
  }
  processes(serverId: string): Promise<{ timestamp: string | null; processes: Process[] }> {
    return this.get(`/metrics/${serverId}/processes`);
  }
  logs(serverId: string, query: Query): Promise<LogPage> {
    return this.get(`/logs/${serverId}`, query);
  }

  // --- alerts ------------------------------------------------------------------------------------
  alerts(query: Query): Promise<Page<Alert>> {
    return this.get("/alerts", query);
  }
  acknowledge(episodeId: string): Promise<Alert> {
    return this.post(`/alerts/${episodeId}/acknowledge`);
  }
  resolve(episodeId: string): Promise<Alert> {
    return this.post(`/alerts/${episodeId}/resolve`);
  }
  rules(): Promise<RuleOut[]> {
    return this.all("/alerts/rules");
  }
  createRule(rule: RuleIn): Promise<RuleOut> {
    return this.post("/alerts/rules", rule);
  }
  updateRule(id: string, rule: RuleIn): Promise<RuleOut> {
    return this.put(`/alerts/rules/${id}`, rule);
  }
  deleteRule(id: string): Promise<void> {
    return this.del(`/alerts/rules/${id}`);
  }
  backtest(rule: RuleIn, start: Date, end: Date): Promise<Backtest> {
    return this.post("/alerts/backtest", { start: start.toISOString(), end: end.toISOString(), rule });
  }

  // --- notification channels ---------------------------------------------------------------------
  /** Every channel of the caller: the list is a cursor page, followed to its end. */
  channels(): Promise<Channel[]> {
    return this.all("/notification-channels");
  }
  createChannel(body: ChannelIn): Promise<Channel> {
    return this.post("/notification-channels", body);
  }
  updateChannel(id: string, body: ChannelIn): Promise<Channel> {
    return this.put(`/notification-channels/${id}`, body);
  }
  deleteChannel(id: string): Promise<void> {
    return this.del(`/notification-channels/${id}`);
  }
  testChannel(id: string): Promise<{ delivered: boolean; status_code: number | null; error: string | null }> {
    return this.post(`/notification-channels/${id}/test`);
  }

  // --- commands, docker, audit -------------------------------------------------------------------
  runCommand(serverId: string, command: string): Promise<CommandResult> {
    return this.post(`/commands/${serverId}`, { command });
  }
  /** The newest commands of the server (the first page of its history). */
  async commandHistory(serverId: string): Promise<CommandHistory[]> {
    const page = await this.get<Page<CommandHistory>>(`/commands/${serverId}/history`, { limit: 100 });
    return page.items;
  }
  containers(serverId: string): Promise<Containers> {
    return this.get(`/docker/${serverId}/containers`);
  }
  containerAction(
    serverId: string,
    containerId: string,
    action: "start" | "stop" | "restart",
  ): Promise<DockerAction> {
    return this.post(`/docker/${serverId}/containers/${encodeURIComponent(containerId)}/${action}`);
  }
  containerLogs(serverId: string, containerId: string, tail = 200): Promise<{ logs: string[] }> {
    return this.get(`/docker/${serverId}/containers/${encodeURIComponent(containerId)}/logs`, { tail });
  }
  serverAudit(serverId: string, cursor?: string): Promise<Page<Audit>> {
    return this.get(`/audit/servers/${serverId}`, { cursor, limit: 100 });
  }
  myAudit(cursor?: string): Promise<Page<Audit>> {
    return this.get("/audit/me", { cursor, limit: 100 });
  }
}

// --- shapes (docs/api.md) ------------------------------------------------------------------------

/** One page of a list: `next_cursor` is null on the last one. */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface User {
  id: string;
  email: string;
  username: string;
  full_name: string | null;
}
export type Role = "owner" | "operator" | "viewer";
export interface Server {
  id: string;
  name: string;
  host: string | null;
  metadata: Record<string, unknown>;
  tags?: string[];
  status: "online" | "offline" | "stale" | "unknown";
  last_seen: string | null;
  role: Role;
  commands_enabled: boolean;
  command_allowlist: string[];
}
export interface Share {
  user_id: string;
  email: string;
  username: string;
  role: Role;
  created_at: string;
}
export interface ApiKey {
  id: string;
  server_id: string;
  name: string | null;
  is_active: boolean;
  last_used: string | null;
  expires_at: string | null;
  created_at: string;
}
export interface ApiKeyCreated extends ApiKey {
  key: string;
  install_command?: string | null;
}
export interface Point {
  time: string;
  value: number | null;
  min?: number | null;
  max?: number | null;
}
export interface Series {
  resolution: "raw" | "1m" | "1h";
  points: Point[];
}
export interface RateSeries {
  resolution: "raw" | "1m" | "1h";
  points: { time: string; sent_per_second: number | null; recv_per_second: number | null }[];
}
export interface Disk {
  mount: string;
  percent: number;
  total_bytes: number;
  used_bytes: number;
}
export interface Iface {
  interface: string;
}
export interface Latest {
  time: string;
  cpu_percent: number;
  memory_percent: number;
  memory_total_bytes: number | null;
  memory_used_bytes: number | null;
  load1: number | null;
  uptime_seconds: number | null;
  cpu_cores: number | null;
  disks: Disk[];
  interfaces: Iface[];
}
export interface Process {
  pid: number;
  name: string;
  user: string | null;
  status: string | null;
  cpu_percent: number | null;
  memory_percent: number | null;
  memory_rss_bytes: number | null;
}
export interface LogLine {
  time: string;
  entry_id: string;
  level: string;
  source: string | null;
  message: string;
}
export interface LogPage {
  items: LogLine[];
  next_cursor: string | null;
}
export interface Alert {
  episode_id: string;
  rule_id: string;
  rule_name: string;
  server_id: string;
  metric: string;
  subject: string | null;
  severity: string;
  comparison: string;
  threshold: number;
  state: "firing" | "resolved";
  started_at: string;
  fired_at: string | null;
  fired_value: number | null;
  resolved_at: string | null;
  message: string;
  acknowledged_at: string | null;
}
export interface RuleIn {
  server_id: string | null;
  name: string;
  metric: string;
  subject: string | null;
  comparison: string;
  threshold: number;
  for_seconds: number;
  clear_threshold: number | null;
  clear_for_seconds: number;
  severity: string;
  interval_seconds: number;
  no_data_intervals: number;
  enabled: boolean;
}
export interface RuleOut {
  id: string;
  rule: RuleIn & { rule_id: string; origin: string };
}
export interface Episode {
  episode_id: string;
  server_id: string;
  subject: string | null;
  started_at: string;
  fired_at: string;
  fired_value: number | null;
  resolved_at: string | null;
}
export interface Backtest {
  servers: string[];
  episodes: Episode[];
}
export interface ChannelIn {
  name: string;
  kind: "webhook" | "slack";
  url: string;
  secret?: string;
  server_id: string | null;
  rule_id: string | null;
  enabled: boolean;
}
export interface Channel extends Omit<ChannelIn, "secret"> {
  id: string;
  has_secret: boolean;
  created_at: string;
  updated_at: string;
}
export interface CommandResult {
  command_id: string;
  success: boolean;
  output: string | null;
  error: string | null;
  exit_code: number | null;
  duration_ms: number | null;
}
export interface CommandHistory {
  command_id: string;
  action: string;
  command: string | null;
  container_id: string | null;
  requested_at: string;
  success: boolean | null;
  exit_code: number | null;
  output: string | null;
  error: string | null;
}
export interface Container {
  id: string;
  name: string;
  image: string | null;
  state: string | null;
  status: string | null;
  cpu_percent: number | null;
  memory_bytes: number | null;
}
export interface Containers {
  time: string;
  containers: Container[];
}
export interface DockerAction {
  status: "success" | "error";
  message: string | null;
}
export interface Audit {
  id: number;
  time: string;
  user_id: string | null;
  server_id: string | null;
  method: string;
  path: string;
  action: string;
  status: number;
  client: string | null;
  detail: Record<string, unknown>;
}
