// The inventory of client certificates seen (dataplane/tls/sightings.ts) as rows of
// `client_certificates_seen`, for every store engine: the same SQL (`?` placeholders) and the
// same merge. A flush adds deltas to what the table holds (summed counts, min first seen, max
// last seen, hostnames united), so nodes of a fleet sharing one table never count twice; the
// table keeps the newest entries up to the inventory's size.
import { addDelta, type SeenDelta, type SeenEntry } from "../dataplane/tls/sightings.ts";

type Row = Record<string, unknown>;

const COLUMNS = ["fingerprint", "subject", "issuer", "serial", "san", "not_after", "result", "revoked", "first_seen", "last_seen", "hostnames", "connections"] as const;
/** Rows per statement: 500 × 12 parameters stays far below either engine's limit. */
const CHUNK = 500;

function args(e: SeenEntry): unknown[] {
  return [e.fingerprint, e.subject, e.issuer, e.serial, e.san, e.notAfter, e.result, e.revoked === null ? null : e.revoked ? 1 : 0, e.firstSeen, e.lastSeen, JSON.stringify(e.hostnames), e.connections];
}

export function entryOf(r: Row): SeenEntry {
  return {
    fingerprint: String(r.fingerprint),
    subject: String(r.subject),
    issuer: String(r.issuer),
    serial: String(r.serial),
    san: String(r.san),
    // PostgreSQL's BIGINT arrives as a string.
    notAfter: Number(r.not_after),
    result: String(r.result),
    revoked: r.revoked === null || r.revoked === undefined ? null : Boolean(Number(r.revoked)),
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
    hostnames: JSON.parse(String(r.hostnames)) as string[],
    connections: Number(r.connections),
  };
}

function chunks<T>(list: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}

const marks = (n: number, width: number): string => Array.from({ length: n }, () => `(${Array(width).fill("?").join(", ")})`).join(", ");

/** The statements reading the stored rows of the deltas' certificates (lock them first where the engine needs to). */
export function selectStatements(deltas: readonly SeenDelta[]): { sql: string; args: unknown[] }[] {
  return chunks(deltas).map((c) => ({ sql: `SELECT * FROM client_certificates_seen WHERE fingerprint IN (${c.map(() => "?").join(", ")})`, args: c.map((d) => d.fingerprint) }));
}

/** The stored rows with the deltas added. */
export function mergeDeltas(stored: readonly Row[], deltas: readonly SeenDelta[]): SeenEntry[] {
  const totals = new Map(stored.map((r) => [String(r.fingerprint), entryOf(r)]));
  for (const d of deltas) totals.set(d.fingerprint, addDelta(totals.get(d.fingerprint), d));
  return [...totals.values()];
}

/** The statements writing merged totals. */
export function upsertStatements(totals: readonly SeenEntry[]): { sql: string; args: unknown[] }[] {
  const set = COLUMNS.slice(1).map((c) => `${c} = excluded.${c}`).join(", ");
  return chunks(totals).map((c) => ({
    sql: `INSERT INTO client_certificates_seen (${COLUMNS.join(", ")}) VALUES ${marks(c.length, COLUMNS.length)} ON CONFLICT (fingerprint) DO UPDATE SET ${set}`,
    args: c.flatMap(args),
  }));
}

export const COUNT_SEEN = "SELECT COUNT(*) AS n FROM client_certificates_seen";
/** Keeps the `?` most recently seen. */
export const PRUNE_SEEN = "DELETE FROM client_certificates_seen WHERE fingerprint NOT IN (SELECT fingerprint FROM client_certificates_seen ORDER BY last_seen DESC, fingerprint LIMIT ?)";
/** The `?` most recently seen, oldest first (so loading them leaves the newest most recently used). */
export const LOAD_SEEN = "SELECT * FROM (SELECT * FROM client_certificates_seen ORDER BY last_seen DESC, fingerprint LIMIT ?) AS newest ORDER BY last_seen, fingerprint";
