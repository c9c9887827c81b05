/** A scriptable HTTP server for unit tests of the clients' protocol handling. */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Recorded {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export type Handler = (req: Recorded, res: ServerResponse) => void;

export class MockServer {
  readonly requests: Recorded[] = [];
  private server: Server | undefined;
  private readonly open = new Set<ServerResponse>();
  url = "";

  constructor(private handler: Handler) {}

  setHandler(handler: Handler): void {
    this.handler = handler;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        const rec = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body };
        this.requests.push(rec);
        this.open.add(res);
        res.on("close", () => this.open.delete(res));
        this.handler(rec, res);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  /** Ends every open response (streams included). */
  dropConnections(): void {
    for (const res of this.open) res.destroy();
    this.open.clear();
  }

  async stop(): Promise<void> {
    this.dropConnections();
    this.server?.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  count(path: string): number {
    return this.requests.filter((r) => r.path.startsWith(path)).length;
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** Starts an event stream and returns a function that writes one event. */
export function sse(res: ServerResponse): (event: string | null, id: number, data: unknown) => void {
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
  res.write(": connected\n\n");
  return (event, id, data) => {
    res.write(`${event ? `event: ${event}\n` : ""}id: ${id}\ndata: ${JSON.stringify(data)}\n\n`);
  };
}

export const boolFlag = (extra: Record<string, unknown> = {}) => ({
  type: "boolean",
  variations: [
    { key: "on", value: true },
    { key: "off", value: false },
  ],
  enabled: true,
  off_variation: "off",
  fallthrough: { variation: "on" },
  ...extra,
});

/** A logger that records what it is given. */
export function recordingLogger() {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } };
}

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
