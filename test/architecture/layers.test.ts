// Who may import whom is enforced by the lint that `npm test` runs: each forbidden arrow,
// written into a file of its layer, is an error under the project's own eslint.config.js.
import { fileURLToPath } from "node:url";
import { ESLint, type Linter } from "eslint";
import tseslint from "typescript-eslint";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const project = new ESLint({ cwd: root });

/** no-restricted-imports messages for `code` at `filePath`, with the rule exactly as the project config sets it there. */
async function violations(filePath: string, code: string): Promise<string[]> {
  const config = (await project.calculateConfigForFile(filePath)) as Linter.Config;
  const rule = config.rules?.["no-restricted-imports"];
  expect(rule, `no import rule configured for ${filePath}`).toBeDefined();
  // Only that rule, without type information: the probe file does not exist.
  const probe = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [{ files: ["**/*.ts"], languageOptions: { parser: tseslint.parser as Linter.Parser }, rules: { "no-restricted-imports": rule! } }],
  });
  const [result] = await probe.lintText(code, { filePath });
  return result!.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

const FORBIDDEN: [layer: string, file: string, code: string, says: RegExp][] = [
  ["data plane → control plane", "src/dataplane/probe.ts", 'import { ControlPlane } from "../control/plane.ts";', /data plane never imports/],
  ["data plane → dialect (type only, nested)", "src/dataplane/tls/probe.ts", 'import type { X } from "../../dialects/fastly/routes.ts";', /data plane never imports/],
  ["rules → model", "src/rules/probe.ts", 'import type { Model } from "../model/schema.ts";', /rules engine imports nothing/],
  ["model → node:fs", "src/model/probe.ts", 'import { readFileSync } from "node:fs";', /model does no I\/O/],
  ["model → node:sqlite", "src/model/probe.ts", 'import { DatabaseSync } from "node:sqlite";', /model does no I\/O/],
  ["model → pg", "src/model/probe.ts", 'import pg from "pg";', /model does no I\/O/],
  ["model → data plane", "src/model/probe.ts", 'import { Snapshot } from "../dataplane/snapshot.ts";', /imports only the rules engine, pki and the dialects' record schemas/],
  ["model → a dialect's routes", "src/model/probe.ts", 'import "../dialects/fastly/routes.ts";', /imports only the rules engine, pki and the dialects' record schemas/],
  ["dialect records → control", "src/dialects/fastly/records.ts", 'import "../../control/writepath.ts";', /Dialect records are pure schemas/],
  ["revocation → data plane", "src/revocation/probe.ts", 'import type { ClientCertFacts } from "../dataplane/facts.ts";', /Revocation does not import the data plane/],
  ["observability → data plane", "src/observability/probe.ts", 'import { openConnections } from "../dataplane/http1.ts";', /Observability imports nobody/],
  ["re-export counts too", "src/observability/probe.ts", 'export { Snapshot } from "../dataplane/snapshot.ts";', /Observability imports nobody/],
  ["loadgen → data plane", "src/loadgen/probe.ts", 'import { ResponseReader } from "../dataplane/http1/http1.ts";', /load generator measures any TLS endpoint from outside/],
  ["loadgen → control plane", "src/loadgen/probe.ts", 'import type { Store } from "../control/store.ts";', /load generator measures any TLS endpoint from outside/],
  ["workers → control plane", "src/workers/probe.ts", 'import { WritePath } from "../control/writepath.ts";', /Worker processes run the data plane/],
];

const ALLOWED: [layer: string, file: string, code: string][] = [
  ["data plane → rules, model, revocation", "src/dataplane/probe.ts", 'import "../rules/index.ts";\nimport "../model/schema.ts";\nimport "../revocation/checker.ts";'],
  ["model → rules, pki and the dialects' records", "src/model/probe.ts", 'import "../rules/index.ts";\nimport "../dialects/records.ts";\nimport "../pki/pem.ts";\nimport { z } from "zod";\nimport "node:crypto";'],
  ["loadgen → itself and node's TLS", "src/loadgen/probe.ts", 'import "./hist.ts";\nimport tls from "node:tls";'],
  ["rules → itself and a package", "src/rules/probe.ts", 'import "./parser.ts";\nimport { RE2JS } from "re2js";'],
];

describe("layer boundaries in the lint", () => {
  for (const [layer, file, code, says] of FORBIDDEN)
    it(`refuses ${layer}`, async () => {
      const found = await violations(file, code);
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(says);
    });

  for (const [layer, file, code] of ALLOWED)
    it(`allows ${layer}`, async () => {
      expect(await violations(file, code)).toEqual([]);
    });
});
