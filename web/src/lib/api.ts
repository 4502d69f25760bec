/**
 * Every REST call of the page, in one module (issue 16 will move lists to one cursor pagination
 * and errors to problem details: the switch happens here). Requests carry the access token;
 * a 401 refreshes it once and retries.
 */
import type { components } from "../api/schema";
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
    body: JSON.stringify({ refresh_token: refreshToken } satisfies Schemas["RefreshIn"]),
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
    return this.anonymous<TokenAnswer>("/auth/login/json", { email, password } satisfies Schemas["LoginIn"]);
  }
  async register(email: string, username: string, password: string): Promise<TokenAnswer> {
    return this.anonymous<TokenAnswer>("/auth/register", {
      email,
      username,
      password,
      password_confirm: password,
    } satisfies Schemas["RegisterIn"]);
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
    return this.request<void>("POST", "/auth/logout", {
      refresh_token: refreshToken,
    } satisfies Schemas["RefreshIn"]);
  }
  me(): Promise<User> {
    return this.get<User>("/auth/me");
  }

  // --- servers and fleet -------------------------------------------------------------------------
  fleet(): Promise<Fleet> {
    return this.get("/fleet");
  }
  servers(): Promise<Server[]> {
    return this.get("/servers");
  }
  server(id: string): Promise<Server> {
    return this.get(`/servers/${id}`);
  }
  createServer(body: ServerIn): Promise<Server> {
    return this.post("/servers", body);
  }
  updateServer(id: string, body: ServerUpdate): Promise<Server> {
    return this.put(`/servers/${id}`, body);
  }
  deleteServer(id: string): Promise<void> {
    return this.del(`/servers/${id}`);
  }
  setCommands(id: string, enabled: boolean, allowlist: string[]): Promise<Server> {
    const body: Schemas["CommandSettingsIn"] = { commands_enabled: enabled, command_allowlist: allowlist };
    return this.put(`/servers/${id}/commands`, body);
  }
  shares(id: string): Promise<Share[]> {
    return this.all(`/servers/${id}/shares`);
  }
  share(id: string, email: string, role: Role): Promise<Share> {
    return this.post(`/servers/${id}/shares`, { email, role } satisfies Schemas["ShareIn"]);
  }
  unshare(id: string, userId: string): Promise<void> {
    return this.del(`/servers/${id}/shares/${userId}`);
  }

  // --- keys --------------------------------------------------------------------------------------
  keys(serverId: string): Promise<ApiKey[]> {
    return this.get(`/api-keys/server/${serverId}`);
  }
  createKey(serverId: string, name: string | null): Promise<ApiKeyCreated> {
    return this.post("/api-keys", { server_id: serverId, name } satisfies Schemas["ApiKeyIn"]);
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
  processes(serverId: string): Promise<Processes> {
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
    const body: Schemas["BacktestIn"] = { start: start.toISOString(), end: end.toISOString(), rule };
    return this.post("/alerts/backtest", body);
  }

  // --- notification channels ---------------------------------------------------------------------
  /** Every channel of the caller: the list is a cursor page, followed to its end. */
  channels(): Promise<Channel[]> {
    return this.all("/notification-channels");
  }
  createChannel(body: ChannelIn): Promise<Channel> {
    return this.post("/notification-channels", body);
  }
  updateChannel(id: string, body: Schemas["ChannelUpdate"]): Promise<Channel> {
    return this.put(`/notification-channels/${id}`, body);
  }
  deleteChannel(id: string): Promise<void> {
    return this.del(`/notification-channels/${id}`);
  }
  testChannel(id: string): Promise<ChannelTest> {
    return this.post(`/notification-channels/${id}/test`);
  }

  // --- commands, docker, audit -------------------------------------------------------------------
  runCommand(serverId: string, command: string): Promise<CommandResult> {
    return this.post(`/commands/${serverId}`, { command } satisfies Schemas["CommandIn"]);
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
  containerLogs(serverId: string, containerId: string, tail = 200): Promise<DockerLogs> {
    return this.get(`/docker/${serverId}/containers/${encodeURIComponent(containerId)}/logs`, { tail });
  }
  serverAudit(serverId: string, cursor?: string): Promise<Page<Audit>> {
    return this.get(`/audit/servers/${serverId}`, { cursor, limit: 100 });
  }
  myAudit(cursor?: string): Promise<Page<Audit>> {
    return this.get("/audit/me", { cursor, limit: 100 });
  }
}

// --- shapes: aliases of the types generated from the API's OpenAPI document (`make client`) ------

type Schemas = components["schemas"];

/** One page of a list: `next_cursor` is null on the last one. */
export type Page<T> = Omit<Schemas["ServerPage"], "items"> & { items: T[] };

export type User = Schemas["UserOut"];
export type Token = Schemas["Token"];
export type Role = Schemas["ShareOut"]["role"];
export type Server = Schemas["ServerOut"];
export type ServerIn = Schemas["ServerIn"];
export type ServerUpdate = Schemas["ServerUpdate"];
export type Share = Schemas["ShareOut"];
export type Fleet = Schemas["FleetOut"];
export type ApiKey = Schemas["ApiKeyOut"];
export type ApiKeyCreated = Schemas["ApiKeyCreated"];
export type Point = Schemas["Point"];
export type Series = Schemas["Series"];
export type RateSeries = Schemas["RateSeries"];
export type Latest = Schemas["LatestOut"];
export type Disk = Latest["disks"][number];
export type Iface = Latest["interfaces"][number];
export type Process = Schemas["ProcessOut"];
export type Processes = Schemas["ProcessesOut"];
export type LogLine = Schemas["LogOut"];
export type LogPage = Schemas["LogPage"];
export type Alert = Schemas["AlertOut"];
export type RuleIn = Schemas["RuleIn"];
export type RuleOut = Schemas["RuleOut"];
export type Episode = Schemas["Episode"];
export type Backtest = Schemas["BacktestOut"];
export type ChannelIn = Schemas["ChannelIn"];
export type Channel = Schemas["ChannelOut"];
export type ChannelTest = Schemas["ChannelTestOut"];
export type CommandResult = Schemas["CommandOut"];
export type CommandHistory = Schemas["CommandHistoryOut"];
export type Container = Schemas["ContainerOut"];
export type Containers = Schemas["ContainersOut"];
export type DockerAction = Schemas["DockerActionOut"];
export type DockerLogs = Schemas["DockerLogsOut"];
export type Audit = Schemas["AuditOut"];
