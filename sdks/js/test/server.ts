/**
 * A real `vexil serve` for the tests: started from the binary named by `VEXIL_BIN` on a free
 * port with a fresh SQLite database in a temporary directory, an admin token from
 * `VEXIL_BOOTSTRAP_TOKEN`, and helpers for the management API (projects, keys, flags).
 */

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The binary, or undefined when the real-server tests must skip. */
export const VEXIL_BIN = process.env.VEXIL_BIN;

/** Why the real-server tests skip, or false when they run. */
export function skipReason(): string | false {
  if (!VEXIL_BIN) return "VEXIL_BIN is not set: real-server tests skipped (set it to a vexil binary to run them)";
  if (!existsSync(VEXIL_BIN)) return `VEXIL_BIN=${VEXIL_BIN} does not exist: real-server tests skipped`;
  return false;
}

export class VexilServer {
  readonly dir = mkdtempSync(join(tmpdir(), "vexil-js-sdk-"));
  readonly token = `vx_pat_${randomBytes(24).toString("hex")}`;
  private child: ChildProcess | undefined;
  private log = "";
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the server (on the same port and database as before when restarting). */
  async start(): Promise<void> {
    const child = spawn(
      VEXIL_BIN!,
      // Insights written every 200 ms (10 s by default), so that tests read them soon.
      ["serve", "--listen", `127.0.0.1:${this.port}`, "--database-url", `sqlite://${join(this.dir, "vexil.db")}`, "--insights-flush-ms", "200"],
      {
        env: { ...process.env, VEXIL_BOOTSTRAP_TOKEN: this.token, VEXIL_LOG_FORMAT: "json" },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    this.child = child;
    this.log = "";
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`vexil serve did not start in 30 s:\n${this.log}`)), 30_000);
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (chunk: string) => {
        this.log += chunk;
        for (const line of this.log.split("\n")) {
          if (!line.includes("vexil is listening")) continue;
          try {
            const entry = JSON.parse(line) as { address?: string };
            if (entry.address) {
              clearTimeout(timer);
              resolve(entry.address);
            }
          } catch {
            // a partial line; wait for the rest
          }
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`vexil serve exited (${code}) before listening:\n${this.log}`));
      });
    });
    this.port = Number(address.split(":").pop());
  }

  /** Kills the server at once (SIGKILL: no graceful shutdown, as in a crash). */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A management API call with the admin token; throws on a non-2xx answer. */
  async api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

/** The default project, its production environment, and keys and flags in it. */
export class Fixture {
  project = "";
  env = "";
  readonly flagIds = new Map<string, string>();

  constructor(readonly server: VexilServer) {}

  async init(): Promise<void> {
    const projects = await this.server.api<{ items: { id: string }[] }>("GET", "/api/v1/projects");
    this.project = projects.items[0]!.id;
    const envs = await this.server.api<{ items: { id: string; key: string }[] }>("GET", `/api/v1/projects/${this.project}/environments`);
    this.env = envs.items.find((e) => e.key === "production")!.id;
  }

  async key(type: "server" | "client"): Promise<string> {
    const r = await this.server.api<{ key: string }>("POST", `/api/v1/projects/${this.project}/api-keys`, {
      name: `js sdk test ${type}`,
      type,
      environment_id: this.env,
    });
    return r.key;
  }

  /** Creates a flag (boolean unless `extra` says otherwise) and configures it in production. */
  async flag(key: string, extra: Record<string, unknown> = {}, config: Record<string, unknown> = { enabled: true }): Promise<string> {
    const r = await this.server.api<{ id: string }>("POST", `/api/v1/projects/${this.project}/feature-flags`, { key, name: key, ...extra });
    this.flagIds.set(key, r.id);
    await this.configure(key, config);
    return r.id;
  }

  async configure(key: string, config: Record<string, unknown>): Promise<void> {
    await this.server.api("PATCH", `/api/v1/flags/${this.flagIds.get(key)}/environments/${this.env}/config`, config);
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the elapsed ms. */
export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}
