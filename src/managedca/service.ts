// The managed CA as the rest of certgate sees it: opened on first use, its revocation state
// read from the model (so the store and the data plane agree), and a public listener that
// serves its certificate, CRL and OCSP to any relying party.
import type http from "node:http";
import { join } from "node:path";
import { managedRevokedAt, type ManagedClientCertificate, type Model } from "../model/schema.ts";
import { ManagedCa, type SerialStatus } from "./ca.ts";
import { FileKeystore, type CaKeystore } from "./keystore.ts";

export const MANAGED_BUNDLE_ID = "managed-ca";
/** A revoked certificate stays reactivatable (pending_revocation) this long, then is final. */
export const REVOCATION_GRACE_MS = 24 * 3_600_000;

export function effectiveStatus(c: ManagedClientCertificate, now = Date.now()): ManagedClientCertificate["status"] {
  if (c.status === "pending_revocation" && c.revoked_at && now - Date.parse(c.revoked_at) > REVOCATION_GRACE_MS) return "revoked";
  return c.status;
}

export class ManagedCaService {
  readonly #keystore: CaKeystore;
  readonly publicUrl: string;
  readonly #model: () => Model;
  #ca: Promise<ManagedCa> | undefined;
  #index: { model: Model; bySerial: Map<string, ManagedClientCertificate> } | undefined;

  /** `where`: the data directory (the CA in its managed-ca/), or a fleet's keystore. */
  constructor(where: string | CaKeystore, publicUrl: string, model: () => Model) {
    this.#keystore = typeof where === "string" ? new FileKeystore(join(where, "managed-ca")) : where;
    this.publicUrl = publicUrl.replace(/\/$/, "");
    this.#model = model;
  }

  /** The CA, created with its key on first call (by this node or, in a fleet, any node). */
  ca(): Promise<ManagedCa> {
    return (this.#ca ??= ManagedCa.open(this.#keystore).catch((e: unknown) => {
      this.#ca = undefined; // a store that was down may answer next time
      throw e;
    }));
  }

  /** The CA if one was created, without creating it. */
  async #existing(): Promise<ManagedCa | undefined> {
    if (this.#ca) return this.#ca;
    const ca = await ManagedCa.existing(this.#keystore);
    if (ca) this.#ca ??= Promise.resolve(ca);
    return ca;
  }

  urls(): { crl: string; ocsp: string } {
    return { crl: `${this.publicUrl}/managed-ca/crl`, ocsp: `${this.publicUrl}/managed-ca/ocsp` };
  }

  statusOf(serial: string): SerialStatus {
    const model = this.#model();
    if (this.#index?.model !== model) this.#index = { model, bySerial: new Map(model.managed_client_certificates.map((c) => [c.serial, c])) };
    const c = this.#index.bySerial.get(serial);
    if (!c) return { status: "unknown" };
    const revokedAt = managedRevokedAt(c);
    return revokedAt ? { status: "revoked", revokedAt } : { status: "good" };
  }

  revoked(): { serial: string; revokedAt: Date }[] {
    return this.#model().managed_client_certificates.flatMap((c) => {
      const revokedAt = managedRevokedAt(c);
      return revokedAt ? [{ serial: c.serial, revokedAt }] : [];
    });
  }

  /** The public listener: GET /managed-ca/ca.pem, GET /managed-ca/crl, POST or GET /managed-ca/ocsp. */
  readonly handler: http.RequestListener = (req, res) => {
    void this.#serve(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  };

  async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    const reply = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body), "cache-control": "max-age=60" });
      res.end(body);
    };
    if (path === "/healthz") return reply(200, "text/plain", "ok\n");
    if (!path.startsWith("/managed-ca/")) return reply(404, "text/plain", "not found\n");
    const ca = await this.#existing();
    if (!ca) return reply(404, "text/plain", "the managed CA has not issued anything yet\n");
    if (req.method === "GET" && path === "/managed-ca/ca.pem") return reply(200, "application/x-pem-file", ca.certPem);
    if (req.method === "GET" && path === "/managed-ca/crl") return reply(200, "application/pkix-crl", await ca.crl(this.revoked()));
    if (path === "/managed-ca/ocsp" && req.method === "POST") {
      const body = await readLimited(req, 64 * 1024);
      if (!body) return reply(413, "text/plain", "request too large\n");
      return reply(200, "application/ocsp-response", await ca.ocsp(body, (s) => this.statusOf(s)));
    }
    if (req.method === "GET" && path.startsWith("/managed-ca/ocsp/")) {
      const der = Buffer.from(decodeURIComponent(path.slice("/managed-ca/ocsp/".length)), "base64");
      return reply(200, "application/ocsp-response", await ca.ocsp(der, (s) => this.statusOf(s)));
    }
    return reply(404, "text/plain", "not found\n");
  }
}

function readLimited(req: http.IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.destroy();
        resolve(null);
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
