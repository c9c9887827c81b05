/**
 * The README's four quick starts, run as written (only the server URL and the keys filled
 * in) against a real `vexil serve`, each as its own Node process importing the package by
 * name. Skips, saying so, without VEXIL_BIN.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

import { packageRoot } from "./paths.js";
import { Fixture, skipReason, VexilServer } from "./server.js";

const skip = skipReason();
const run = promisify(execFile);

/** The README's `js` code blocks, by the heading above them. */
function quickStarts(): Map<string, string> {
  const readme = readFileSync(join(packageRoot(), "README.md"), "utf8");
  const out = new Map<string, string>();
  for (const m of readme.matchAll(/^## (Quick start: [^\n]+)\n[\s\S]*?```js\n([\s\S]*?)```/gm)) out.set(m[1]!, m[2]!);
  return out;
}

const expected: Record<string, RegExp[]> = {
  "Quick start: Node": [/new checkout for user-42/, /Welcome back, pro pro RULE_MATCH/],
  "Quick start: browser": [/new checkout: true/, /banner: Welcome back, pro/, /banner for user-7: Welcome\n/],
  "Quick start: OpenFeature, server": [/true on TARGETING_MATCH \{ flagVersion: \d+, ruleId: '[0-9a-f]+', ruleIndex: 0 \}/],
  "Quick start: OpenFeature, web": [/banner: Welcome back, pro/, /banner for user-7: Welcome\n/],
};

describe("the README quick starts against a real vexil serve", { skip }, () => {
  const server = new VexilServer();
  const fx = new Fixture(server);
  let serverKey = "";
  let clientKey = "";

  before(async () => {
    await server.start();
    await fx.init();
    serverKey = await fx.key("server");
    clientKey = await fx.key("client");
    await fx.flag("new-checkout", { client_side: true }, {
      enabled: true,
      rules: [{ clauses: [{ attribute: "email", op: "ends_with", values: ["@acme.com"] }], serve: { variation: "on" } }],
      fallthrough: { variation: "on" },
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
  });

  after(() => server.stop());

  it("the README has the four quick starts", () => {
    assert.deepEqual([...quickStarts().keys()], Object.keys(expected));
  });

  for (const [name, patterns] of Object.entries(expected)) {
    it(`${name} runs`, async () => {
      const code = quickStarts()
        .get(name)!
        .replace(/^const url = "[^"]*";/m, `const url = ${JSON.stringify(server.url)};`)
        .replace(/^const sdkKey = "[^"]*";/m, `const sdkKey = ${JSON.stringify(serverKey)};`)
        .replace(/^const clientKey = "[^"]*";/m, `const clientKey = ${JSON.stringify(clientKey)};`);
      assert.ok(code.includes(server.url), "the URL line was found");
      // Inside the package, so that `@vexil/sdk` resolves to this package (self-reference).
      const dir = join(packageRoot(), "build", "quickstart");
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${name.replace(/[^A-Za-z]+/g, "-").toLowerCase()}.mjs`);
      writeFileSync(file, code);
      const { stdout } = await run(process.execPath, [file], { timeout: 30_000 });
      for (const p of patterns) assert.match(stdout, p, `${name} printed:\n${stdout}`);
    });
  }
});
