/**
 * An incremental parser of `text/event-stream` (the WHATWG server-sent events format):
 * text in, whole events out, with a bound on the size of a line and of an event so that a
 * broken or hostile server cannot make the client buffer without limit.
 */

export interface SseEvent {
  /** The `event:` field; `message` when absent. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The last event id in force when the event was dispatched (ids persist). */
  id: string | undefined;
}

/** The stream broke the size bound. */
export class SseTooLarge extends Error {
  constructor(readonly max: number) {
    super(`server-sent event larger than ${max} characters`);
    this.name = "SseTooLarge";
  }
}

export class SseParser {
  private line = "";
  private afterCr = false;
  private atStart = true;
  private event = "";
  private data = "";
  private hasData = false;
  private lastId: string | undefined;

  constructor(private readonly max: number) {}

  /** Feeds decoded text; calls `onEvent` for each completed event. Throws `SseTooLarge`. */
  feed(chunk: string, onEvent: (e: SseEvent) => void): void {
    if (this.atStart && chunk.length > 0) {
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
      this.atStart = false;
    }
    if (this.afterCr && chunk.length > 0) {
      this.afterCr = false;
      if (chunk[0] === "\n") chunk = chunk.slice(1);
    }
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.pushLinePart(chunk.slice(start, i));
      const line = this.line;
      this.line = "";
      this.processLine(line, onEvent);
      if (c === 13) {
        if (i + 1 < chunk.length) {
          if (chunk.charCodeAt(i + 1) === 10) i++;
        } else {
          this.afterCr = true;
        }
      }
      start = i + 1;
    }
    this.pushLinePart(chunk.slice(start));
  }

  /** Whether an event has been started but not completed (a cut here loses it). */
  inEvent(): boolean {
    return this.line.length > 0 || this.hasData || this.event.length > 0;
  }

  private pushLinePart(part: string): void {
    if (this.line.length + part.length > this.max) throw new SseTooLarge(this.max);
    this.line += part;
  }

  private processLine(line: string, onEvent: (e: SseEvent) => void): void {
    if (line.length === 0) {
      this.dispatch(onEvent);
      return;
    }
    if (line[0] === ":") return; // a comment: the server's heartbeat
    const colon = line.indexOf(":");
    let name: string;
    let value: string;
    if (colon >= 0) {
      name = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
    } else {
      name = line;
      value = "";
    }
    switch (name) {
      case "event":
        this.event = value;
        break;
      case "data":
        if (this.data.length + value.length + 1 > this.max) throw new SseTooLarge(this.max);
        this.data = this.hasData ? this.data + "\n" + value : value;
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      default:
      // `retry` and unknown fields are ignored: the client has its own backoff policy.
    }
  }

  private dispatch(onEvent: (e: SseEvent) => void): void {
    const event = this.event;
    this.event = "";
    if (!this.hasData) return;
    const data = this.data;
    this.hasData = false;
    this.data = "";
    onEvent({ event: event || "message", data, id: this.lastId });
  }
}
