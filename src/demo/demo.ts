// The zero-config demo behind `npm start`: https://localhost:8443 with mTLS enforced,
// fronting the echo origin, on the dev PKI in certs/dev (created on first run).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createDevPki, DEV_FILES, writeDevPki } from "../pki/devpki.ts";
import { parseModel, type Model } from "../model/schema.ts";

export async function ensureDevPki(dir: string): Promise<boolean> {
  if (existsSync(join(dir, DEV_FILES.serverKey))) return false;
  await writeDevPki(dir, await createDevPki());
  return true;
}

/**
 * The demo's words for a container (Docker creates /.dockerenv; the image's working directory
 * is the /data volume, so the PKI is in /data/certs/dev): how the host gets the client
 * certificates the curl lines name, and how to run a real configuration instead.
 */
export function containerNotes(inContainer = existsSync("/.dockerenv")): string[] {
  if (!inContainer) return [];
  return [
    "# in a container: first copy the certificates to the host: docker cp CONTAINER:/data/certs .",
    "# a real configuration: mount its directory, -v \"$PWD/etc:/etc/certgate:ro\" certgate serve --data /data --config /etc/certgate/certgate.yaml (README \"Docker\")",
  ];
}

export function demoModel(certDir: string, originUrl: string): Model {
  const read = (f: string) => readFileSync(join(certDir, f), "utf8");
  return parseModel({
    certificates: [{ id: "dev-localhost", cert: read(DEV_FILES.serverCert), key: read(DEV_FILES.serverKey) }],
    trust_bundles: [{ id: "dev-clients", name: "certgate dev client CA", ca: read(DEV_FILES.clientCa) }],
    hosts: [
      {
        hostname: "localhost",
        mtls: { mode: "enforced", trust_bundle: "dev-clients" },
        forward_client_cert: { rfc9440: true, cloudflare: true, xfcc: false },
      },
    ],
    routes: [{ id: "echo", hostname: "localhost", path_prefix: "/", origin: originUrl }],
    default_certificate: "dev-localhost",
  });
}
