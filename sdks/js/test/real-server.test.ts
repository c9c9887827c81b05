/**
 * Against a real `vexil serve` (binary from VEXIL_BIN, random port, fresh SQLite database):
 * the server client, the browser client (in Node, over fetch) and both OpenFeature
 * providers, through a change, the server being killed, and its restart. Skips, saying
 * so, when VEXIL_BIN is not set.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { OpenFeature as ServerOpenFeature, ProviderEvents as ServerEvents } from "@openfeature/server-sdk";
import { OpenFeature as WebOpenFeature, ProviderEvents as WebEvents } from "@openfeature/web-sdk";

import { VexilBrowserClient } from "../src/browser.js";
import { VexilClient } from "../src/index.js";
import { VexilProvider } from "../src/openfeature/server.js";
import { VexilWebProvider } from "../src/openfeature/web.js";
import { recordingLogger } from "./mock.js";
import { Fixture, skipReason, VexilServer, waitFor } from "./server.js";

const skip = skipReason();
if (skip) console.error(`\n*** ${skip} ***\n`);

const staff = { targetingKey: "user-1", email: "ann@acme.com" };
const fast = { initialBackoffMs: 50, maxBackoffMs: 300 };

describe("against a real vexil serve", { skip }, () => {
  const server = new VexilServer();
  const fx = new Fixture(server);
  let serverKey = "";
  let clientKey = "";
  let client: VexilClient;
  let browser: VexilBrowserClient;
  const serverLog = recordingLogger();
  const providerEvents: string[] = [];
  const webEvents: string[] = [];

  before(async () => {
    await server.start();
    await fx.init();
    serverKey = await fx.key("server");
    clientKey = await fx.key("client");
    await fx.flag("new-checkout", { client_side: true }, {
      enabled: true,
      rules: [{ clauses: [{ attribute: "email", op: "ends_with", values: ["@acme.com"] }], serve: { variation: "on" } }],
      fallthrough: { rollout: { variations: [{ variation: "on", weight: 25000 }, { variation: "off", weight: 75000 }] } },
      watch_events: ["checkout_completed"],
    });
    await fx.flag("banner-text", {
      type: "string",
      client_side: true,
      variations: [{ key: "plain", value: "Welcome" }, { key: "pro", value: "Welcome back, pro" }],
    }, {
      enabled: true,
      rules: [{ clauses: [{ attribute: "plan", op: "in", values: ["pro"] }], serve: { variation: "pro" } }],
      fallthrough: { variation: "plain" },
    });
    await fx.flag("server-only", {}, { enabled: true });
  });

  after(async () => {
    await client?.close();
    await browser?.close();
    await ServerOpenFeature.close();
    await WebOpenFeature.close();
    await server.stop();
  });

  it("the server client evaluates locally exactly as the server does", async () => {
    client = new VexilClient({ url: server.url, sdkKey: serverKey, ...fast, logger: serverLog.logger });
    await client.ready(10_000);
    assert.equal(client.status().state, "READY");
    for (const context of [staff, { targetingKey: "user-2" }, { targetingKey: "user-6" }, { email: "x@y.z" }, { targetingKey: "u", plan: "pro" }]) {
      for (const flag of ["new-checkout", "banner-text", "server-only", "missing"]) {
        const response = await fetch(`${server.url}/api/v1/evaluate`, {
          method: "POST",
          headers: { Authorization: `Bearer ${serverKey}`, "Content-Type": "application/json" },
          body: JSON.stringify({ flag_key: flag, context }),
        });
        const remote = (await response.json()) as { value: unknown; variation: unknown; reason: unknown; flag_version: unknown };
        const local = client.outcome(flag, context)!.detail;
        assert.deepEqual(
          { value: local.value, variation: local.variation, reason: local.reason, flagVersion: local.flagVersion },
          { value: remote.value, variation: remote.variation, reason: remote.reason, flagVersion: remote.flag_version },
          `${flag} for ${JSON.stringify(context)}`,
        );
      }
    }
  });

  it("the browser client (client key, OFREP) works in Node", async () => {
    browser = new VexilBrowserClient({ url: server.url, clientKey, context: { targetingKey: "user-1", plan: "pro" }, cache: false, ...fast, logger: recordingLogger().logger });
    await browser.ready(10_000);
    assert.equal(browser.stringValue("banner-text", "x"), "Welcome back, pro");
    assert.equal(browser.stringDetail("banner-text", "x").reason, "TARGETING_MATCH");
    assert.equal(browser.boolDetail("server-only", true).errorCode, "FLAG_NOT_FOUND", "not client_side: invisible");
    await browser.setContext({ targetingKey: "user-1", plan: "free" });
    assert.equal(browser.stringValue("banner-text", "x"), "Welcome");
  });

  it("both OpenFeature providers are READY", async () => {
    for (const ev of [ServerEvents.Ready, ServerEvents.Stale, ServerEvents.Error, ServerEvents.ConfigurationChanged]) {
      ServerOpenFeature.addHandler(ev, () => providerEvents.push(ev));
    }
    for (const ev of [WebEvents.Ready, WebEvents.Stale, WebEvents.Error, WebEvents.ConfigurationChanged]) {
      WebOpenFeature.addHandler(ev, () => webEvents.push(ev));
    }
    await ServerOpenFeature.setProviderAndWait(new VexilProvider({ url: server.url, sdkKey: serverKey, ...fast, logger: recordingLogger().logger }));
    await WebOpenFeature.setContext({ targetingKey: "user-1", plan: "pro" });
    await WebOpenFeature.setProviderAndWait(new VexilWebProvider({ url: server.url, clientKey, cache: false, ...fast, logger: recordingLogger().logger }));
    assert.equal(await ServerOpenFeature.getClient().getBooleanValue("new-checkout", false, staff), true);
    assert.equal(WebOpenFeature.getClient().getStringValue("banner-text", "x"), "Welcome back, pro");
  });

  it("a change made through the management API reaches a running server client within 1 s", async () => {
    const timings: number[] = [];
    // An odd number of toggles, so that the flag ends in another state than it began: the
    // web provider announces a change of the values it serves, and a busy machine may
    // coalesce its refetches over the intermediate states.
    for (let i = 0; i < 5; i++) {
      const enabled = i % 2 === 1;
      const changed = new Promise<void>((resolve) => {
        const off = client.onFlagChange("new-checkout", () => {
          off();
          resolve();
        });
      });
      const start = Date.now();
      await fx.server.api("PATCH", `/api/v1/flags/${fx.flagIds.get("new-checkout")}/environments/${fx.env}/config/toggle`, { enabled });
      await changed;
      timings.push(Date.now() - start);
      assert.equal(client.boolValue("new-checkout", staff, !enabled), enabled);
    }
    console.error(`change → server client: ${timings.join(", ")} ms (toggle request included)`);
    assert.ok(Math.max(...timings) < 1000, `every change within 1 s: ${timings.join(", ")} ms`);
    // The browser client and both providers hear of it too.
    await waitFor(() => browser.boolDetail("new-checkout", false).flagVersion === client.boolDetail("new-checkout", staff, false).flagVersion, 3000, "the browser client's refetch");
    await waitFor(() => providerEvents.includes(ServerEvents.ConfigurationChanged), 3000, "server provider CONFIGURATION_CHANGED");
    await waitFor(() => webEvents.includes(WebEvents.ConfigurationChanged), 3000, "web provider CONFIGURATION_CHANGED");
  });

  it("evaluation counts and tracked events reach the server's insights", async () => {
    type Insights = { variations: Record<string, { evaluations: number; events: Record<string, { count: number; sum: number }> }> };
    const insights = () =>
      server.api<Insights>("GET", `/api/v1/flags/${fx.flagIds.get("new-checkout")}/environments/${fx.env}/insights`);
    // What the flag serves staff now (earlier tests changed its configuration).
    const variation = client.boolDetail("new-checkout", staff, false).variation!;
    await client.flush();
    await browser.flush();
    const counted = (v: Insights) => v.variations[variation]?.evaluations ?? 0;
    let now = await insights();
    for (let deadline = Date.now() + 5000; counted(now) === 0; now = await insights()) {
      assert.ok(Date.now() < deadline, `the first report never arrived: ${JSON.stringify(now)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = counted(now);
    for (let i = 0; i < 7; i++) client.boolValue("new-checkout", staff, false);
    client.track("checkout_completed", staff, 42);
    await client.flush();
    const loud = serverLog.lines.filter((l) => (l.level === "warn" || l.level === "error") && /metrics|track/.test(l.message));
    assert.deepEqual(loud, [], "the server takes both without complaint");
    // Seven more evaluations of that variation (or more), and the event attributed to it.
    for (let deadline = Date.now() + 5000; counted(now) < before + 7 || !now.variations[variation]!.events.checkout_completed; now = await insights()) {
      assert.ok(Date.now() < deadline, `insights never showed the report: ${JSON.stringify(now)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // At least: the browser client and the web provider, still running, evaluate through
    // OFREP too, and the server counts what it serves them.
    assert.ok(counted(now) >= before + 7);
    assert.deepEqual(now.variations[variation]!.events.checkout_completed, { count: 1, sum: 42 });
  });

  it("killing the server: values still served, STALE reported everywhere", async () => {
    const before = client.boolValue("new-checkout", staff, false);
    const banner = browser.stringValue("banner-text", "x");
    await server.kill();
    await waitFor(() => client.status().state === "STALE", 5000, "the server client STALE");
    await waitFor(() => browser.status().state === "STALE", 5000, "the browser client STALE");
    await waitFor(() => providerEvents.includes(ServerEvents.Stale), 5000, "server provider PROVIDER_STALE");
    await waitFor(() => webEvents.includes(WebEvents.Stale), 5000, "web provider PROVIDER_STALE");
    assert.equal(client.boolValue("new-checkout", staff, !before), before);
    assert.equal(client.stringValue("banner-text", { plan: "pro" }, "x"), "Welcome back, pro");
    assert.equal(browser.stringValue("banner-text", "x"), banner);
    assert.match(client.status().reason, /unreachable/);
  });

  it("a restart on the same port and database recovers, and changes flow again", async () => {
    const readyBefore = providerEvents.filter((e) => e === ServerEvents.Ready).length;
    await server.start();
    await waitFor(() => client.status().state === "READY", 5000, "the server client READY");
    await waitFor(() => browser.status().state === "READY", 5000, "the browser client READY");
    await waitFor(() => providerEvents.filter((e) => e === ServerEvents.Ready).length > readyBefore, 5000, "server provider PROVIDER_READY");
    await waitFor(() => client.status().reason === "streaming", 5000, "streaming again");
    const start = Date.now();
    await fx.configure("banner-text", { fallthrough: { variation: "pro" } });
    await waitFor(() => client.stringValue("banner-text", { targetingKey: "z" }, "x") === "Welcome back, pro", 1000, "the change after the restart");
    console.error(`change after restart → server client: ${Date.now() - start} ms`);
    await waitFor(() => browser.stringValue("banner-text", "x") === "Welcome back, pro", 3000, "the browser client after the restart");
  });
});
