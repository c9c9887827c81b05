// Builds the package with tsc only: ES modules in dist/esm, CommonJS in dist/cjs (marked
// as such by its own package.json), both with type declarations. Run by `npm run build`.
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const withTests = process.argv.includes("--tests");

rmSync(join(root, "dist"), { recursive: true, force: true });
const projects = ["tsconfig.json", "tsconfig.cjs.json"];
if (withTests) {
  rmSync(join(root, "build"), { recursive: true, force: true });
  projects.push("tsconfig.test.json");
}
for (const project of projects) {
  try {
    execFileSync(process.execPath, [tsc, "-p", join(root, project)], { stdio: "inherit", cwd: root });
  } catch {
    console.error(`tsc -p ${project} failed (see above)`);
    process.exit(1);
  }
}
writeFileSync(join(root, "dist", "cjs", "package.json"), '{\n  "type": "commonjs"\n}\n');
