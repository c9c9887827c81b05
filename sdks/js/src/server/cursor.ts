/**
 * Turning the stream's `put`/`patch`/`delete` events into store updates, and knowing where
 * to resume.
 *
 * The server sends one event per changed flag or segment, and every event of one update
 * carries the same `id` (the environment version after the update). So an id is known to
 * be complete only once an event with a higher id arrives: the cursor resumes
 * (`Last-Event-ID`) from the last *complete* version. The server then repeats the changes
 * after it; definitions already applied are recognised by the store (same JSON) and do not
 * notify listeners twice.
 *
 * Within an update, events are applied as they arrive. One that does not validate on its
 * own (a flag removed before the flag that referenced it is updated) waits for the rest of
 * its update; if the update ends (or goes quiet) still invalid, the cursor asks for a full
 * resynchronisation.
 */

import type { FlagDef, Ruleset, SegmentDef } from "../engine/model.js";
import type { SseEvent } from "../internal/sse.js";
import type { Change, Store } from "./store.js";

/** Most changes one update may hold before the cursor gives up and resyncs. */
const MAX_PENDING = 50_000;

/** What an event did: the affected flags (possibly none), or why to resync. */
export type Handled = { changed: string[]; version: number } | { resync: string };

export class Cursor {
  /** Every change up to this version has been received and applied: where to resume. */
  confirmed: number | undefined;
  /** The version whose events are arriving (complete only once a later one arrives). */
  private group: number | undefined;
  /** Changes of `group` that do not validate yet. */
  private pending: Change[] = [];

  /** A (re)connection: events of an unfinished update will be sent again. */
  reconnected(): void {
    this.group = undefined;
    this.pending = [];
  }

  /** A whole ruleset was loaded at `version` (a fetch or a `put`). */
  loaded(version: number): void {
    this.confirmed = version;
    this.group = undefined;
    this.pending = [];
  }

  /** Whether an update is waiting for more of its events. */
  waiting(): boolean {
    return this.pending.length > 0;
  }

  handle(store: Store, event: SseEvent): Handled {
    const idText = event.id?.trim();
    const id = idText !== undefined && /^[0-9]+$/.test(idText) ? Number(idText) : undefined;
    switch (event.event) {
      case "put": {
        let ruleset: Ruleset;
        try {
          ruleset = JSON.parse(event.data) as Ruleset;
        } catch (e) {
          return { resync: `put does not parse: ${(e as Error).message}` };
        }
        const held = store.version;
        const version = typeof ruleset?.version === "number" ? ruleset.version : 0;
        // A cluster node that has not caught up: never step back to its older data.
        if (held !== null && version < held) return { resync: `put of version ${version} is older than the ${held} held` };
        try {
          const changed = store.replace(ruleset);
          this.loaded(version);
          return { changed, version };
        } catch (e) {
          return { resync: `put does not validate: ${(e as Error).message}` };
        }
      }
      case "patch":
      case "delete": {
        let data: { kind?: unknown; key?: unknown; version?: unknown; value?: unknown };
        try {
          data = JSON.parse(event.data) as typeof data;
        } catch (e) {
          return { resync: `${event.event} does not parse: ${(e as Error).message}` };
        }
        if (typeof data !== "object" || data === null || typeof data.kind !== "string" || typeof data.key !== "string") {
          return { resync: `${event.event} without kind and key` };
        }
        const version = id ?? (typeof data.version === "number" ? data.version : undefined);
        if (version === undefined) return { resync: `${event.event} without a version` };
        if (event.event === "patch" && (typeof data.value !== "object" || data.value === null)) {
          return { resync: `patch of '${data.key}' without a value` };
        }
        const def = event.event === "patch" ? data.value : null;
        let change: Change;
        if (data.kind === "flag") change = { kind: "flag", key: data.key, def: def as FlagDef | null };
        else if (data.kind === "segment") change = { kind: "segment", key: data.key, def: def as SegmentDef | null };
        else return { changed: [], version: store.version ?? 0 }; // a kind this client does not know
        return this.change(store, version, change);
      }
      case "refetch":
        // Client keys' event; a server key should not get it, but it means "fetch again".
        return { resync: "server asked for a refetch" };
      default:
        // Unknown events are skipped, so that a newer server can add kinds of events.
        return { changed: [], version: store.version ?? 0 };
    }
  }

  private change(store: Store, version: number, change: Change): Handled {
    if (this.group !== undefined && version === this.group) {
      // Another event of the update in progress.
    } else if (this.group !== undefined && version < this.group) {
      return { resync: `event id ${version} after ${this.group}` };
    } else {
      if (this.confirmed !== undefined && version <= this.confirmed) {
        return { resync: `event id ${version} not after ${this.confirmed}` };
      }
      if (this.waiting()) return { resync: `update ${this.group} did not validate once complete` };
      // A later update begins: the previous one is complete.
      if (this.group !== undefined) this.confirmed = this.group;
      this.group = version;
    }
    this.pending.push(change);
    try {
      const changed = store.apply(version, this.pending);
      this.pending = [];
      return { changed, version };
    } catch (e) {
      if (this.pending.length < MAX_PENDING) return { changed: [], version: store.version ?? 0 };
      return { resync: `update ${version} does not validate: ${(e as Error).message}` };
    }
  }
}
