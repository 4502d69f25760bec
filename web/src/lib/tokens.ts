/**
 * The session's tokens and when to refresh them.
 *
 * Access tokens live `expires_in` seconds (15 min by default); the page refreshes ahead of the
 * expiry (`refreshLeadMs`), so a request or a socket's re-auth (`auth_required` comes 60 s
 * before the expiry) always has a valid token at hand. Refresh tokens rotate and reusing one
 * revokes its whole family, so tabs must never refresh with the same one: the refresh runs
 * under a Web Lock shared by the tabs of this origin and first re-reads the stored tokens, which
 * another tab may have rotated already.
 */
import type { components } from "../api/schema";

export interface StoredTokens {
  access: string;
  refresh: string;
  /** Epoch ms at which the access token expires (receipt time + expires_in). */
  expiresAt: number;
  /** The token's whole lifetime in ms, for the lead computation. */
  lifetimeMs: number;
  userEmail: string;
}

/** How long before the expiry to refresh: a fifth of the lifetime, between 30 s and 2 min. */
export function refreshLeadMs(lifetimeMs: number): number {
  return Math.min(120_000, Math.max(30_000, lifetimeMs / 5));
}

/** Delay from `now` until the refresh should run (0: now). */
export function refreshDelayMs(tokens: Pick<StoredTokens, "expiresAt" | "lifetimeMs">, now: number): number {
  return Math.max(0, tokens.expiresAt - refreshLeadMs(tokens.lifetimeMs) - now);
}

/** True when the access token expires within `marginMs` of `now`. */
export function expiresWithin(
  tokens: Pick<StoredTokens, "expiresAt">,
  marginMs: number,
  now: number,
): boolean {
  return tokens.expiresAt - now <= marginMs;
}

export interface TokenStorage {
  load(): StoredTokens | null;
  save(tokens: StoredTokens | null): void;
}

export const STORAGE_KEY = "fleetpulse.session";

export function browserStorage(store: Storage): TokenStorage {
  return {
    load() {
      const text = store.getItem(STORAGE_KEY);
      if (!text) return null;
      try {
        const t = JSON.parse(text) as StoredTokens;
        return typeof t.access === "string" && typeof t.refresh === "string" ? t : null;
      } catch {
        return null;
      }
    },
    save(tokens) {
      if (tokens) store.setItem(STORAGE_KEY, JSON.stringify(tokens));
      else store.removeItem(STORAGE_KEY);
    },
  };
}

type Token = components["schemas"]["Token"];

/** The part of a login's answer (`Token`) the manager keeps. */
export type TokenAnswer = Pick<Token, "access_token" | "refresh_token" | "expires_in"> & {
  user: Pick<Token["user"], "email">;
};

export function fromAnswer(answer: TokenAnswer, now: number): StoredTokens {
  return {
    access: answer.access_token,
    refresh: answer.refresh_token,
    expiresAt: now + answer.expires_in * 1000,
    lifetimeMs: answer.expires_in * 1000,
    userEmail: answer.user.email,
  };
}

export type Refresher = (refreshToken: string) => Promise<TokenAnswer>;
type LockRunner = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** Runs `fn` under a cross-tab lock where the browser has Web Locks (secure contexts), else alone. */
export const webLock: LockRunner = (name, fn) => {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  return locks ? (locks.request(name, fn) as Promise<Awaited<ReturnType<typeof fn>>>) : fn();
};

/**
 * Holds the tokens, refreshes them ahead of expiry (one refresh at a time, across tabs too), and
 * tells listeners when the session ends (refresh refused: signed out elsewhere, or revoked).
 */
export class TokenManager {
  private tokens: StoredTokens | null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inflight: Promise<StoredTokens | null> | null = null;
  private listeners = new Set<(signedIn: boolean) => void>();

  constructor(
    private readonly storage: TokenStorage,
    private readonly refresher: Refresher,
    private readonly now: () => number = Date.now,
    private readonly lock: LockRunner = webLock,
  ) {
    this.tokens = storage.load();
  }

  get current(): StoredTokens | null {
    return this.tokens;
  }

  onChange(listener: (signedIn: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(tokens: StoredTokens | null): void {
    this.tokens = tokens;
    this.storage.save(tokens);
    this.schedule();
    for (const l of this.listeners) l(tokens !== null);
  }

  /** Another tab changed the stored session (the `storage` event). */
  reload(): void {
    const stored = this.storage.load();
    const was = this.tokens !== null;
    this.tokens = stored;
    this.schedule();
    if (was !== (stored !== null)) for (const l of this.listeners) l(stored !== null);
  }

  /** Starts the timer that refreshes ahead of expiry. */
  schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.tokens) return;
    const delay = refreshDelayMs(this.tokens, this.now());
    this.timer = setTimeout(() => void this.refresh().catch(() => undefined), delay);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A token valid for at least `marginMs` more, refreshing first when needed; null: signed out. */
  async access(marginMs = 30_000): Promise<string | null> {
    const t = this.tokens;
    if (!t) return null;
    if (!expiresWithin(t, marginMs, this.now())) return t.access;
    const fresh = await this.refresh();
    return fresh?.access ?? null;
  }

  /** Refreshes now (single flight). Resolves null when the session is over. */
  refresh(force = false): Promise<StoredTokens | null> {
    if (!this.inflight) {
      this.inflight = this.lock("fleetpulse-token-refresh", async () => {
        // Another tab may have rotated the refresh token while this one waited for the lock.
        const stored = this.storage.load();
        if (!stored) return null;
        if (
          !force &&
          this.tokens &&
          stored.refresh !== this.tokens.refresh &&
          !expiresWithin(stored, refreshLeadMs(stored.lifetimeMs), this.now())
        ) {
          return stored;
        }
        const answer = await this.refresher(stored.refresh);
        return fromAnswer(answer, this.now());
      })
        .then(
          (fresh) => {
            this.set(fresh);
            return fresh;
          },
          (error: unknown) => {
            if (error instanceof SessionEnded) {
              this.set(null);
              return null;
            }
            // A network error: keep the tokens, try again shortly.
            if (this.timer) clearTimeout(this.timer);
            this.timer = setTimeout(() => void this.refresh().catch(() => undefined), 5_000);
            throw error;
          },
        )
        .finally(() => {
          this.inflight = null;
        });
    }
    return this.inflight;
  }
}

/** Thrown by a refresher when the API refused the refresh token (401): the session is over. */
export class SessionEnded extends Error {}
