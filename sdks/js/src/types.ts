/** Types the clients share. */

/**
 * How current a client's flag data is:
 * - `NOT_READY`: no data yet (first request pending); evaluations serve the caller's default.
 * - `READY`: the server's current data (streaming or a fresh poll), or offline mode.
 * - `STALE`: serving the last known data (or the bootstrap/cached values) because the
 *   server cannot be reached right now, or the client was closed.
 * - `ERROR`: no usable data and the server cannot be reached, or the server rejected the
 *   key (401/403); `keyRejected` says which. Evaluations still serve any data held.
 */
export type State = "NOT_READY" | "READY" | "STALE" | "ERROR";

export interface ClientStatus {
  readonly state: State;
  /** Why the state is what it is, in words fit for a log line. */
  readonly reason: string;
  /** The version of the data in use, if any. */
  readonly version: number | null;
  /** When `state` last changed. */
  readonly since: Date;
  /** The server refused the key (HTTP 401/403): retrying will not help until it is fixed. */
  readonly keyRejected: boolean;
}

/** Flags whose evaluation may have changed, after an update to `version`. */
export interface FlagChange {
  readonly keys: readonly string[];
  readonly version: number;
}

/** The events a client emits. */
export interface ClientEvents extends Record<string, unknown> {
  change: FlagChange;
  status: ClientStatus;
}

/** `ready()` gave up: not ready in time, or the key was rejected. `status` says more. */
export class VexilInitError extends Error {
  constructor(
    message: string,
    readonly status: ClientStatus,
  ) {
    super(message);
    this.name = "VexilInitError";
  }
}
