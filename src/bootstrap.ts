// The bootstrap file: YAML (or JSON) in the model's shape, `*_file` paths relative to it.
// Certificates, keys, CA bundles and CRLs stay file-backed (the store keeps the absolute path
// and certgate reloads the file when it changes: control/filesource.ts); any other `*_file` (an
// origin's CA) is read once and inlined. Startup wiring, beside cli.js: the model itself does no I/O.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse } from "yaml";
import { ModelError, parseModel, type Model } from "./model/schema.ts";

const FILE_KEYS: Record<string, string> = { cert_file: "cert", key_file: "key", ca_file: "ca", crl_file: "pem" };
/** Where a `*_file` stays a path: certificates[i].cert_file, trust_bundles[i].revocation.crl.crl_file… */
const FILE_BACKED = /^(certificates\[\d+\]\.(cert|key)_file|trust_bundles\[\d+\]\.(ca_file|revocation\.crl\.crl_file))$/;

export function loadBootstrap(file: string): Model {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ModelError([{ path: "", message: `cannot read ${file}: ${(e as Error).message}` }]);
  }
  let raw: unknown;
  try {
    raw = parse(text, { prettyErrors: true });
  } catch (e) {
    throw new ModelError([{ path: "", message: `${file}: invalid YAML: ${(e as Error).message}` }]);
  }
  const problems: { path: string; message: string }[] = [];
  inlineFiles(raw, dirname(resolve(file)), "", problems);
  if (problems.length) throw new ModelError(problems);
  return parseModel(raw ?? {});
}

function inlineFiles(node: unknown, base: string, path: string, problems: { path: string; message: string }[]): void {
  if (Array.isArray(node)) return node.forEach((n, i) => inlineFiles(n, base, `${path}[${i}]`, problems));
  if (!node || typeof node !== "object") return;
  const obj = node as Record<string, unknown>;
  for (const [k, v] of Object.entries(obj)) {
    const here = path ? `${path}.${k}` : k;
    const target = FILE_KEYS[k];
    if (target && typeof v === "string") {
      if (obj[target] !== undefined) problems.push({ path: here, message: `give either ${k} or ${target}, not both` });
      if (FILE_BACKED.test(here)) {
        obj[k] = resolve(base, v); // read by the control plane, which checks it is there
        continue;
      }
      try {
        obj[target] = readFileSync(resolve(base, v), "utf8");
        delete obj[k];
      } catch (e) {
        problems.push({ path: here, message: `cannot read ${v}: ${(e as Error).message}` });
      }
    } else inlineFiles(v, base, here, problems);
  }
}
