/**
 * The HTTP pieces both clients share, over the platform's `fetch` (Node ≥ 18, browsers):
 * URL joining that keeps a path prefix, timeouts and cancellation, size-bounded bodies,
 * errors worded for a log line and a status reason, and reading a server-sent event stream
 * from a streaming response body.
 */

import { SseParser, type SseEvent } from "./sse.js";

/** The `fetch` function the clients call (the global one unless another is given). */
export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** Why a request failed. */
export class RequestError extends Error {
  constructor(
    message: string,
    /** The HTTP status, when the server answered. */
    readonly status?: number,
  ) {
    super(message);
    this.name = "RequestError";
  }

  /** The server refused the key (401/403): retrying will not help until it is fixed. */
  get keyRejected(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

/** `base` + `path`, keeping any path prefix of `base` (`https://example.com/vexil/`). */
export function joinUrl(base: string, path: string): string {
  const url = new URL(base);
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return new URL(path, url).toString();
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * An AbortController that also aborts when `parent` does. Abort it when done with the
 * request: that also detaches it from `parent`.
 */
export function childController(parent: AbortSignal): AbortController {
  const child = new AbortController();
  if (parent.aborted) {
    child.abort();
    return child;
  }
  const onParentAbort = () => child.abort();
  parent.addEventListener("abort", onParentAbort, { once: true });
  child.signal.addEventListener("abort", () => parent.removeEventListener("abort", onParentAbort), { once: true });
  return child;
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  let message = e.message;
  let cause = (e as { cause?: unknown }).cause;
  for (let depth = 0; cause instanceof Error && depth < 4; depth++) {
    if (!message.includes(cause.message)) message += `: ${cause.message}`;
    cause = (cause as { cause?: unknown }).cause;
  }
  return message;
}

/**
 * Sends a request that gives up after `timeoutMs` (until the response headers arrive) or
 * when `signal` aborts. Network failures become `RequestError`s without a status. The
 * caller aborts the returned controller once done with the response.
 */
export async function send(
  fetchFn: FetchFn,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ response: Response; controller: AbortController }> {
  const controller = childController(signal);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await fetchFn(url, { ...init, signal: controller.signal });
    return { response, controller };
  } catch (e) {
    controller.abort();
    if (timedOut) throw new RequestError(`no response within ${timeoutMs} ms`);
    if (signal.aborted) throw new RequestError("client closed");
    throw new RequestError(`server unreachable: ${describe(e)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a body as text, refusing more than `maxChars` characters. */
export async function readText(response: Response, maxChars: number, timeoutMs: number): Promise<string> {
  const body = response.body;
  if (!body) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const { done, value } = await withTimeout(reader.read(), deadline - Date.now());
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (text.length > maxChars) throw new RequestError(`invalid response: body larger than ${maxChars} characters`);
    }
    return text + decoder.decode();
  } catch (e) {
    void reader.cancel().catch(() => {});
    if (e instanceof RequestError) throw e;
    throw new RequestError(`reading the response failed: ${describe(e)}`);
  }
}

class Timeout extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  if (ms <= 0) return Promise.reject(new RequestError("the response took too long"));
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Timeout(`nothing received for ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** How a stream connection ended. */
export interface StreamEnd {
  /** Some bytes arrived (an event or a heartbeat): streaming works. */
  received: boolean;
  /** Why it ended, if not closed by the server or by `signal`. */
  error?: RequestError;
  /** Nothing arrived within the read timeout. */
  timedOut?: boolean;
  /** The data cannot be trusted (an event did not apply, or was too large): why. */
  resync?: string;
}

/**
 * Reads server-sent events from a response body until it ends, fails, stays silent for
 * `readTimeoutMs`, `signal` aborts, or `onEvent` returns a string (a reason to stop).
 * The read timeout is asked before each read (it is shorter while an update is incomplete).
 */
export async function readEvents(
  response: Response,
  controller: AbortController,
  opts: { maxEventChars: number; readTimeoutMs: () => number },
  onEvent: (e: SseEvent) => string | undefined,
): Promise<StreamEnd> {
  const body = response.body;
  if (!body) return { received: false, error: new RequestError("invalid response: no stream body") };
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser(opts.maxEventChars);
  let received = false;
  const finish = (end: StreamEnd): StreamEnd => {
    controller.abort();
    void reader.cancel().catch(() => {});
    return end;
  };
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    const wait = opts.readTimeoutMs();
    try {
      chunk = await withTimeout(reader.read(), wait);
    } catch (e) {
      if (controller.signal.aborted) return finish({ received });
      if (e instanceof Timeout) return finish({ received, error: new RequestError(`stream silent for ${wait} ms`), timedOut: true });
      return finish({ received, error: new RequestError(`stream interrupted: ${describe(e)}`) });
    }
    if (chunk.done) return finish({ received });
    received = true;
    const events: SseEvent[] = [];
    try {
      parser.feed(decoder.decode(chunk.value, { stream: true }), (ev) => events.push(ev));
    } catch (e) {
      return finish({ received, resync: (e as Error).message });
    }
    for (const ev of events) {
      const stop = onEvent(ev);
      if (stop !== undefined) return finish({ received, resync: stop });
    }
  }
}
