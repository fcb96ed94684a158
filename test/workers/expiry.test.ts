// Expiry monitoring under `serve --workers 2`: the certificate gauges come once, from the primary's
// model (never summed or repeated per worker), follow writes, and the client-certificate histogram
// sums every worker's handshakes; an upload warning is logged by the primary.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { pki } from "../helpers/harness.ts";
import { get, onWorker, sample, startGroup, type Group } from "./group.ts";

const DAY = 86_400_000;
const GAUGE = "certgate_certificate_not_after_seconds";
const lines = (m: string, prefix: string) => m.split("\n").filter((l) => l.startsWith(prefix));

describe("expiry metrics with serve --workers 2", () => {
  let g: Group;
  let p: DevPki;
  let client: Issued;
  let close: () => void = () => {};

  beforeAll(async () => {
    p = await pki();
    client = await issue({ subject: "O=certgate dev,CN=workers expiry client", days: 100 }, p.ca);
    const echo = await startEcho();
    close = () => echo.server.close();
    g = await startGroup((pk) => ({
      certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
      trust_bundles: [{ id: "clients", ca: pk.ca.certPem }],
      hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" } }],
      routes: [{ id: "r0", hostname: "localhost", origin: echo.url }],
      default_certificate: "srv",
    }));
  }, 60_000);
  afterAll(async () => {
    await g?.stop();
    close();
  });

  it("each certificate's series appears exactly once, without a worker label, and follows writes", async () => {
    let m = await g.metrics();
    // Soonest first: the server certificate (825 days), then the CA (10 years).
    expect(lines(m, `${GAUGE}{`)).toEqual([
      `${GAUGE}{kind="server",id="srv",subject="CN=localhost,O=certgate dev"} ${p.server.cert.notAfter.getTime() / 1000}`,
      `${GAUGE}{kind="ca",id="clients",subject="CN=certgate dev client CA,O=certgate dev"} ${p.ca.cert.notAfter.getTime() / 1000}`,
    ]);
    expect(lines(m, `# TYPE ${GAUGE}`)).toHaveLength(1);

    const soonCa = await issue({ subject: "O=certgate test,CN=workers soon CA", ca: true, notBefore: new Date(Date.now() - 100 * DAY), notAfter: new Date(Date.now() + 2 * DAY + 3_600_000) });
    const cur = (await g.api("GET", "/v1/config")).body;
    const put = await g.api("PUT", "/v1/config", { ...cur, trust_bundles: [...cur.trust_bundles, { id: "soon", ca: soonCa.certPem }] });
    expect(put.status).toBe(200);
    expect(put.body.warnings).toEqual([expect.stringMatching(/trust bundle "soon": CA certificate 1 .* expires on .*, in 2 days/)]);
    m = await g.metrics();
    expect(lines(m, `${GAUGE}{kind="ca",id="soon",`)).toEqual([`${GAUGE}{kind="ca",id="soon",subject="CN=workers soon CA,O=certgate test"} ${soonCa.cert.notAfter.getTime() / 1000}`]);
    // The primary logs the warning with the write it belongs to.
    const logged = g
      .log()
      .split("\n")
      .filter((l) => l.includes('"admin write stored with warnings"'))
      .map((l) => JSON.parse(l) as { level: string; method: string; path: string; token_id: string; warnings: string[] });
    expect(logged).toEqual([expect.objectContaining({ level: "warn", method: "PUT", path: "/v1/config", token_id: "admin", warnings: put.body.warnings })]);

    expect((await g.api("PUT", "/v1/config", cur)).status).toBe(200);
    expect(lines(await g.metrics(), `${GAUGE}{kind="ca",id="soon",`)).toEqual([]);
  });

  it("the client-certificate histogram counts the full handshakes of both workers", async () => {
    for (const w of ["0", "1"]) expect((await onWorker(w, () => get(g.port, { cert: client }))).status).toBe(200);
    const m = await g.metrics();
    const handshakes = sample(m, 'certgate_handshakes_total{host="localhost",result="verified",resumed="false",group="X25519MLKEM768"}')!;
    expect(handshakes).toBeGreaterThanOrEqual(2);
    // Every verified full handshake, on either worker, observed once; 100 days is between 90 and 180.
    expect(sample(m, 'certgate_client_certificate_remaining_seconds_count{bundle="clients"}')).toBe(handshakes);
    expect(sample(m, `certgate_client_certificate_remaining_seconds_bucket{le="${90 * 86_400}",bundle="clients"}`)).toBe(0);
    expect(sample(m, `certgate_client_certificate_remaining_seconds_bucket{le="${180 * 86_400}",bundle="clients"}`)).toBe(handshakes);
  });
});
