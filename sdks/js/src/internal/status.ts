/** The status cell of a client: current status, change notification, and waiting for READY. */

import type { ClientStatus, State } from "../types.js";
import { VexilInitError } from "../types.js";

export class StatusCell {
  private current: ClientStatus;

  constructor(
    state: State,
    reason: string,
    private readonly onChange: (s: ClientStatus) => void,
  ) {
    this.current = Object.freeze({ state, reason, version: null, since: new Date(), keyRejected: false });
  }

  get(): ClientStatus {
    return this.current;
  }

  /** Sets state and reason; notifies when anything but the version changed. */
  set(state: State, reason: string, version: number | null, keyRejected = false): void {
    const c = this.current;
    if (c.state === state && c.reason === reason && c.keyRejected === keyRejected) {
      if (c.version !== version) this.current = Object.freeze({ ...c, version });
      return;
    }
    this.current = Object.freeze({
      state,
      reason,
      version,
      since: c.state === state ? c.since : new Date(),
      keyRejected,
    });
    this.onChange(this.current);
  }

  setVersion(version: number | null): void {
    if (this.current.version !== version) this.current = Object.freeze({ ...this.current, version });
  }
}

/**
 * Resolves once `status()` is READY; rejects when the key is rejected, after `timeoutMs`,
 * or when the client closes first.
 */
export function waitReady(
  status: () => ClientStatus,
  subscribe: (f: (s: ClientStatus) => void) => () => void,
  closed: AbortSignal,
  timeoutMs: number,
): Promise<void> {
  const now = status();
  if (now.state === "READY") return Promise.resolve();
  return new Promise((resolve, reject) => {
    let unsubscribe = () => {};
    const done = (error?: VexilInitError) => {
      clearTimeout(timer);
      unsubscribe();
      closed.removeEventListener("abort", onClose);
      if (error) reject(error);
      else resolve();
    };
    const check = (s: ClientStatus) => {
      if (s.state === "READY") done();
      else if (s.keyRejected) done(new VexilInitError(`the server rejected the key: ${s.reason}`, s));
    };
    const onClose = () => done(new VexilInitError("the client was closed before it was ready", status()));
    const timer = setTimeout(
      () => done(new VexilInitError(`not ready within ${timeoutMs} ms: ${status().reason}`, status())),
      timeoutMs,
    );
    unsubscribe = subscribe(check);
    closed.addEventListener("abort", onClose, { once: true });
    check(now);
  });
}
