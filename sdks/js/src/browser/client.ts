/**
 * `VexilBrowserClient`: the client for browsers and other untrusted front ends (client API
 * keys, `vx_cli_…`). It never sees rules: the server evaluates every `client_side` flag for
 * the current context through OFREP's bulk evaluation (`POST /ofrep/v1/evaluate/flags`,
 * with `ETag`/`If-None-Match`), and the client serves those values synchronously.
 *
 * - Freshness: it follows `GET /api/v1/sdk/stream`, where client keys receive `refetch`
 *   events, and evaluates again on each (a conditional request: 304 when nothing changed for
 *   this context). The stream is read through `fetch` so that the key travels in a header.
 *   Reconnection uses backoff with jitter; after repeated stream failures it polls instead.
 * - Offline start: the last values are kept in `localStorage` (when there is one) with
 *   the context they belong to, and served at once when a page starts with that context.
 * - `setContext()` evaluates again for the new context and reports changed flags.
 */

import { stableJson } from "../engine/json.js";
import { murmur3 } from "../engine/murmur3.js";
import type { Context, JsonValue } from "../engine/model.js";
import { Backoff } from "../internal/backoff.js";
import { Emitter } from "../internal/emitter.js";
import { joinUrl, readEvents, readText, RequestError, send, sleep, type FetchFn } from "../internal/http.js";
import { Insights, type InsightsOptions } from "../internal/insights.js";
import { consoleLogger, type Logger } from "../internal/log.js";
import { StatusCell, waitReady } from "../internal/status.js";
import type { ClientEvents, ClientStatus, FlagChange, State } from "../types.js";

/** The part of the Web Storage API the cache uses (`localStorage` fits). */
export interface CacheStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface VexilBrowserClientOptions {
  /** The Vexil server, e.g. `https://flags.example.com` (a path prefix is kept). */
  url: string;
  /** A client API key of one environment (`vx_cli_…` or `vx_mob_…`). */
  clientKey: string;
  /** The evaluation context (`targetingKey` plus attributes); change it with `setContext`. */
  context?: Context;
  /** Follow the server's change stream (default true); false polls instead. */
  streaming?: boolean;
  /** How often to poll when streaming is off or unavailable (default 60000 ms). */
  pollIntervalMs?: number;
  /** Reconnection backoff bounds (defaults 1000 and 30000 ms). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Timeout of an evaluation request and of a stream's response headers (default 15000 ms). */
  requestTimeoutMs?: number;
  /** A stream silent this long is reconnected (default 45000 ms: three missed heartbeats). */
  streamReadTimeoutMs?: number;
  /** Stream attempts in a row that get nothing before polling instead (default 3). */
  streamFailuresBeforePolling?: number;
  /**
   * Where the last values are kept for an offline start: a Storage-like object, `true`
   * for `localStorage` when the platform has one (the default), or `false` for none.
   */
  cache?: CacheStorage | boolean;
  /** Evaluation counts and `track()` events; `false` switches both off. */
  insights?: InsightsOptions | false;
  logger?: Logger;
  fetch?: FetchFn;
}

/** A flag's result for the current context, as the server evaluated it. */
export interface BrowserEvaluationDetail<T = JsonValue> {
  /** The served value, or the caller's default on an error. */
  readonly value: T;
  readonly variation: string | null;
  /**
   * OpenFeature's reason: STATIC, TARGETING_MATCH, SPLIT, DISABLED or DEFAULT from the
   * server, or ERROR with `errorCode` (FLAG_NOT_FOUND, TARGETING_KEY_MISSING, TYPE_MISMATCH,
   * CLIENT_NOT_READY, GENERAL).
   */
  readonly reason: string;
  readonly errorCode?: string;
  readonly errorMessage?: string;
  readonly flagVersion: number | null;
}

interface FlagResult {
  value?: JsonValue;
  variant?: string;
  reason?: string;
  errorCode?: string;
  errorDetails?: string;
  flagVersion: number | null;
}

interface CachedState {
  context: string;
  etag: string | null;
  version: number | null;
  flags: Record<string, FlagResult>;
  savedAt: string;
}

function defaultStorage(): CacheStorage | undefined {
  try {
    const ls = (globalThis as { localStorage?: CacheStorage }).localStorage;
    return ls ?? undefined;
  } catch {
    return undefined; // access can throw (privacy settings, sandboxed frames)
  }
}

function parseFlag(raw: unknown): [string, FlagResult] | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const f = raw as Record<string, unknown>;
  if (typeof f.key !== "string") return undefined;
  const meta = (typeof f.metadata === "object" && f.metadata !== null ? f.metadata : {}) as Record<string, unknown>;
  const result: FlagResult = { flagVersion: typeof meta.flagVersion === "number" ? meta.flagVersion : null };
  if (typeof f.errorCode === "string") {
    result.errorCode = f.errorCode;
    if (typeof f.errorDetails === "string") result.errorDetails = f.errorDetails;
  } else {
    if ("value" in f) result.value = f.value as JsonValue;
    if (typeof f.variant === "string") result.variant = f.variant;
    if (typeof f.reason === "string") result.reason = f.reason;
  }
  return [f.key, result];
}

export class VexilBrowserClient {
  private flags = new Map<string, FlagResult>();
  private ctx: Context;
  private ctxText: string;
  private etag: string | null = null;
  /** The request body the ETag belongs to. */
  private etagBody: string | null = null;
  private version: number | null = null;
  private hasData = false;
  private readonly events: Emitter<ClientEvents>;
  private readonly statusCell: StatusCell;
  private readonly closer = new AbortController();
  private readonly logger: Logger;
  private readonly insights: Insights;
  private readonly fetchFn: FetchFn;
  private readonly storage: CacheStorage | undefined;
  private readonly cacheKey: string;
  private readonly evaluateUrl: string;
  private readonly streamUrl: string;
  private readonly backoff: Backoff;
  private readonly running: Promise<void>;
  private queued: Promise<void> | null = null;
  private inFlight: Promise<void> | null = null;
  private warned = false;
  private readonly onPageHide = () => void this.insights.flush();

  constructor(private readonly options: VexilBrowserClientOptions) {
    if (!options.url) throw new Error("`url` is required (the Vexil server)");
    try {
      new URL(options.url);
    } catch {
      throw new Error(`invalid server URL ${JSON.stringify(options.url)}`);
    }
    if (!options.clientKey) throw new Error("`clientKey` is required (a client API key, vx_cli_…)");
    this.logger = options.logger ?? consoleLogger;
    this.events = new Emitter((e) => this.logger.error("a listener threw", e));
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.ctx = { ...(options.context ?? {}) };
    this.ctxText = stableJson(this.ctx);
    this.evaluateUrl = joinUrl(options.url, "ofrep/v1/evaluate/flags");
    this.streamUrl = joinUrl(options.url, "api/v1/sdk/stream");
    this.backoff = new Backoff(Math.max(1, options.initialBackoffMs ?? 1000), options.maxBackoffMs ?? 30_000);
    this.storage = options.cache === false ? undefined : options.cache === true || options.cache === undefined ? defaultStorage() : options.cache;
    this.cacheKey = `vexil.flags.${murmur3(`${options.url}|${options.clientKey}`).toString(16)}`;
    const cached = this.loadCache();
    this.statusCell = new StatusCell(
      cached ? "STALE" : "NOT_READY",
      cached ? "cached values; the server has not answered yet" : "connecting",
      (s) => this.events.emit("status", s),
    );
    this.statusCell.setVersion(this.version);
    this.insights = new Insights(options.url, options.clientKey, this.fetchFn, this.logger, this.closer.signal, options.insights);
    (globalThis as { addEventListener?: (e: string, f: () => void) => void }).addEventListener?.("pagehide", this.onPageHide);
    this.running = this.loop();
  }

  /** Resolves once values fresh from the server are in (status READY); see the server client. */
  ready(timeoutMs = 10_000): Promise<void> {
    return waitReady(() => this.statusCell.get(), (f) => this.events.on("status", f), this.closer.signal, timeoutMs);
  }

  status(): ClientStatus {
    return this.statusCell.get();
  }

  on<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): void {
    this.events.off(event, listener);
  }

  onFlagChange(key: string, listener: (change: FlagChange) => void): () => void {
    return this.events.on("change", (c) => {
      if (c.keys.includes(key)) listener(c);
    });
  }

  /** The current context. */
  context(): Context {
    return { ...this.ctx };
  }

  /**
   * Evaluates every flag again for `context`; resolves once the new values are in (or the
   * attempt failed: the previous values stay and the status says STALE or ERROR).
   * `change` listeners hear of the flags whose value changed.
   */
  async setContext(context: Context): Promise<void> {
    this.ctx = { ...(context ?? {}) };
    this.ctxText = stableJson(this.ctx);
    try {
      await this.refresh();
    } catch (e) {
      this.failed(e instanceof RequestError ? e : new RequestError(String(e)));
    }
  }

  boolValue(key: string, defaultValue: boolean): boolean {
    return this.typed(key, defaultValue, (v) => typeof v === "boolean");
  }

  stringValue(key: string, defaultValue: string): string {
    return this.typed(key, defaultValue, (v) => typeof v === "string");
  }

  numberValue(key: string, defaultValue: number): number {
    return this.typed(key, defaultValue, (v) => typeof v === "number");
  }

  jsonValue<T extends JsonValue = JsonValue>(key: string, defaultValue: T): T {
    return this.typed(key, defaultValue, (v) => v !== null && v !== undefined);
  }

  boolDetail(key: string, defaultValue: boolean): BrowserEvaluationDetail<boolean> {
    return this.detail(key, defaultValue, "boolean", (v) => typeof v === "boolean");
  }

  stringDetail(key: string, defaultValue: string): BrowserEvaluationDetail<string> {
    return this.detail(key, defaultValue, "string", (v) => typeof v === "string");
  }

  numberDetail(key: string, defaultValue: number): BrowserEvaluationDetail<number> {
    return this.detail(key, defaultValue, "number", (v) => typeof v === "number");
  }

  jsonDetail<T extends JsonValue = JsonValue>(key: string, defaultValue: T): BrowserEvaluationDetail<T> {
    return this.detail(key, defaultValue, "JSON", (v) => v !== null && v !== undefined);
  }

  /** Every flag's result for the current context (not counted in evaluation insights). */
  allFlags(): Record<string, BrowserEvaluationDetail<JsonValue | null>> {
    const out: Record<string, BrowserEvaluationDetail<JsonValue | null>> = {};
    for (const key of this.flags.keys()) out[key] = this.detail<JsonValue | null>(key, null, "", () => true, false);
    return out;
  }

  /** Records an event for the current context (`POST /api/v1/track`, best effort). */
  track(key: string, value?: number): void {
    this.insights.track(key, { ...this.ctx }, value);
  }

  flush(): Promise<void> {
    return this.insights.flush();
  }

  async close(): Promise<void> {
    if (!this.closer.signal.aborted) this.closer.abort();
    (globalThis as { removeEventListener?: (e: string, f: () => void) => void }).removeEventListener?.("pagehide", this.onPageHide);
    await this.running;
    await this.insights.close();
    this.events.clear();
  }

  private typed<T>(key: string, defaultValue: T, accepts: (v: unknown) => boolean): T {
    const f = this.flags.get(key);
    if (f === undefined || f.errorCode !== undefined || !accepts(f.value)) return defaultValue;
    if (f.variant !== undefined) this.insights.count(key, f.variant);
    return f.value as T;
  }

  private detail<T>(key: string, defaultValue: T, typeName: string, accepts: (v: unknown) => boolean, count = true): BrowserEvaluationDetail<T> {
    const f = this.flags.get(key);
    const error = (errorCode: string, errorMessage: string, flagVersion: number | null = null): BrowserEvaluationDetail<T> => ({
      value: defaultValue,
      variation: null,
      reason: "ERROR",
      errorCode,
      errorMessage,
      flagVersion,
    });
    if (f === undefined) {
      return this.hasData ? error("FLAG_NOT_FOUND", `flag '${key}' was not found`) : error("CLIENT_NOT_READY", "no values yet");
    }
    if (f.errorCode !== undefined) return error(f.errorCode, f.errorDetails ?? f.errorCode, f.flagVersion);
    if (f.value === undefined) {
      // The server's "use the code default".
      return { value: defaultValue, variation: f.variant ?? null, reason: f.reason ?? "DEFAULT", flagVersion: f.flagVersion };
    }
    if (!accepts(f.value)) return error("TYPE_MISMATCH", `flag '${key}' is not a ${typeName} flag`, f.flagVersion);
    if (count && f.variant !== undefined) this.insights.count(key, f.variant);
    return { value: f.value as T, variation: f.variant ?? null, reason: f.reason ?? "UNKNOWN", flagVersion: f.flagVersion };
  }

  /** Queues an evaluation for the current context; concurrent callers share one request. */
  private refresh(): Promise<void> {
    if (this.queued) return this.queued;
    const previous = this.inFlight ?? Promise.resolve();
    const next = previous
      .catch(() => {})
      .then(() => {
        this.queued = null;
        const run = this.evaluate();
        this.inFlight = run;
        return run.finally(() => {
          if (this.inFlight === run) this.inFlight = null;
        });
      });
    this.queued = next;
    return next;
  }

  /** One bulk evaluation for the current context. */
  private async evaluate(): Promise<void> {
    const ctxText = this.ctxText;
    const body = JSON.stringify({ context: this.ctx });
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.options.clientKey}`,
      "Content-Type": "application/json",
      Accept: "application/json",
    };
    if (this.etag !== null && this.etagBody === body) headers["If-None-Match"] = this.etag;
    const timeout = this.options.requestTimeoutMs ?? 15_000;
    const { response, controller } = await send(this.fetchFn, this.evaluateUrl, { method: "POST", headers, body }, timeout, this.closer.signal);
    try {
      await this.load(response, body, ctxText, timeout);
    } finally {
      controller.abort();
    }
  }

  /** Takes in a bulk evaluation response (200 with values, 304 unchanged). */
  private async load(response: Response, body: string, ctxText: string, timeout: number): Promise<void> {
    if (response.status === 304) {
      this.succeeded();
      return;
    }
    if (response.status !== 200) {
      void response.body?.cancel().catch(() => {});
      throw new RequestError(`HTTP ${response.status} from ${this.evaluateUrl}`, response.status);
    }
    const text = await readText(response, 64 * 1024 * 1024, timeout);
    let doc: { flags?: unknown; metadata?: { environmentVersion?: unknown } };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch (e) {
      throw new RequestError(`invalid response: not JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(doc.flags)) throw new RequestError("invalid response: no flags list");
    if (ctxText !== this.ctxText) return; // the context changed meanwhile; its own request follows
    const next = new Map<string, FlagResult>();
    for (const raw of doc.flags) {
      const parsed = parseFlag(raw);
      if (parsed) next.set(parsed[0], parsed[1]);
    }
    const version = typeof doc.metadata?.environmentVersion === "number" ? doc.metadata.environmentVersion : this.version;
    this.etag = response.headers.get("etag");
    this.etagBody = body;
    this.apply(next, version);
    this.saveCache();
    this.succeeded();
  }

  private apply(next: Map<string, FlagResult>, version: number | null): void {
    const changed: string[] = [];
    for (const [key, r] of next) {
      const old = this.flags.get(key);
      if (old === undefined || stableJson([old.value, old.variant, old.errorCode]) !== stableJson([r.value, r.variant, r.errorCode])) {
        changed.push(key);
      }
    }
    for (const key of this.flags.keys()) if (!next.has(key)) changed.push(key);
    this.flags = next;
    this.version = version;
    this.hasData = true;
    this.statusCell.setVersion(version);
    if (changed.length > 0) this.events.emit("change", Object.freeze({ keys: Object.freeze(changed.sort()), version: version ?? 0 }));
  }

  private succeeded(): void {
    if (this.warned) {
      this.logger.info("server reachable again");
      this.warned = false;
    }
    if (this.statusCell.get().state !== "READY") this.setStatus("READY", "values fetched");
  }

  private failed(error: RequestError): void {
    if (this.closer.signal.aborted) return; // a request cut short by close()
    if (!this.warned) {
      this.logger.warn(`server unreachable; serving the last known values (${error.message})`);
      this.warned = true;
    }
    const state: State = error.keyRejected || !this.hasData ? "ERROR" : "STALE";
    this.setStatus(state, error.message, error.keyRejected);
  }

  private setStatus(state: State, reason: string, keyRejected = false): void {
    this.statusCell.set(state, reason, this.version, keyRejected);
  }

  private async loop(): Promise<void> {
    const o = this.options;
    const streaming = o.streaming !== false;
    const pollMs = Math.max(1, o.pollIntervalMs ?? 60_000);
    const failuresBeforePolling = Math.max(1, o.streamFailuresBeforePolling ?? 3);
    let needFetch = true;
    let streamFailures = 0;
    let polling = !streaming;
    while (!this.closer.signal.aborted) {
      if (needFetch) {
        try {
          await this.refresh();
          needFetch = false;
        } catch (e) {
          if (this.closer.signal.aborted) break;
          this.failed(e instanceof RequestError ? e : new RequestError(String(e)));
          await sleep(this.backoff.next(), this.closer.signal);
          continue;
        }
      }
      if (polling) {
        this.setStatus("READY", streaming ? "polling (streaming unavailable)" : "polling");
        await sleep(pollMs, this.closer.signal);
        needFetch = true;
        continue;
      }
      const { received, error } = await this.stream();
      if (this.closer.signal.aborted) break;
      streamFailures = received ? 0 : streamFailures + 1;
      if (received) this.backoff.reset();
      if (error?.keyRejected) this.failed(error);
      else this.logger.debug(`stream ended: ${error?.message ?? "closed by the server"}`);
      if (streamFailures >= failuresBeforePolling) {
        this.logger.warn(`streaming unavailable after ${streamFailures} attempts; polling every ${pollMs} ms instead`);
        polling = true;
      }
      await sleep(this.backoff.next(), this.closer.signal);
      needFetch = true; // a conditional request: cheap when nothing changed
    }
    this.setStatus(this.hasData ? "STALE" : "NOT_READY", "client closed");
  }

  private async stream(): Promise<{ received: boolean; error?: RequestError }> {
    const o = this.options;
    // Only headers the server's CORS policy allows (no Cache-Control): this runs in browsers.
    const headers: Record<string, string> = { Authorization: `Bearer ${o.clientKey}`, Accept: "text/event-stream" };
    if (this.version !== null) headers["Last-Event-ID"] = String(this.version);
    let opened;
    try {
      opened = await send(this.fetchFn, this.streamUrl, { headers }, o.requestTimeoutMs ?? 15_000, this.closer.signal);
    } catch (e) {
      return { received: false, error: e instanceof RequestError ? e : new RequestError(String(e)) };
    }
    const { response, controller } = opened;
    if (response.status !== 200) {
      controller.abort();
      return { received: false, error: new RequestError(`HTTP ${response.status} from ${this.streamUrl}`, response.status) };
    }
    this.setStatus("READY", "streaming");
    const end = await readEvents(
      response,
      controller,
      { maxEventChars: 1024 * 1024, readTimeoutMs: () => o.streamReadTimeoutMs ?? 45_000 },
      (event) => {
        if (event.event === "refetch" || event.event === "put" || event.event === "patch" || event.event === "delete") {
          this.refresh().catch((e: unknown) => this.failed(e instanceof RequestError ? e : new RequestError(String(e))));
        }
        return undefined;
      },
    );
    return { received: end.received, ...(end.error ? { error: end.error } : {}) };
  }

  private loadCache(): boolean {
    if (!this.storage) return false;
    try {
      const text = this.storage.getItem(this.cacheKey);
      if (text === null) return false;
      const cached = JSON.parse(text) as CachedState;
      if (cached.context !== this.ctxText || typeof cached.flags !== "object" || cached.flags === null) return false;
      this.flags = new Map(Object.entries(cached.flags));
      this.etag = cached.etag;
      this.etagBody = JSON.stringify({ context: this.ctx });
      this.version = cached.version;
      this.hasData = true;
      return true;
    } catch (e) {
      this.logger.debug(`ignoring the cached values: ${(e as Error).message}`);
      return false;
    }
  }

  private saveCache(): void {
    if (!this.storage) return;
    const state: CachedState = {
      context: this.ctxText,
      etag: this.etag,
      version: this.version,
      flags: Object.fromEntries(this.flags),
      savedAt: new Date().toISOString(),
    };
    try {
      this.storage.setItem(this.cacheKey, JSON.stringify(state));
    } catch (e) {
      this.logger.debug(`cannot cache the values: ${(e as Error).message}`);
    }
  }
}
