// A fleet node's local copy of the last configuration it applied (DATA/last-config.json),
// rewritten after every apply, so a node started while PostgreSQL is unreachable can serve
// what it served before. It holds private keys and the ticket secret: mode 0600, like the store.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseModel, type Model } from "../model/schema.ts";

export const LAST_COPY = "last-config.json";

export interface LastCopy {
  revision: number;
  saved_at: string;
  ticket_secret: string;
  model: Model;
}

/** Written whole to a temporary file, then renamed over the old copy: never half a copy. */
export function saveLastCopy(dataDir: string, model: Model, revision: number, ticketSecret: Buffer): void {
  const file = join(dataDir, LAST_COPY);
  const body: LastCopy = { revision, saved_at: new Date().toISOString(), ticket_secret: ticketSecret.toString("base64"), model };
  writeFileSync(`${file}.tmp`, JSON.stringify(body), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The copy, or undefined when there is none; an unreadable or invalid one is an error naming the file. */
export function readLastCopy(dataDir: string): (Omit<LastCopy, "ticket_secret"> & { ticketSecret: Buffer }) | undefined {
  const file = join(dataDir, LAST_COPY);
  if (!existsSync(file)) return undefined;
  try {
    const raw = JSON.parse(readFileSync(file, "utf8")) as LastCopy;
    return { revision: Number(raw.revision), saved_at: String(raw.saved_at), ticketSecret: Buffer.from(String(raw.ticket_secret), "base64"), model: parseModel(raw.model) };
  } catch (e) {
    throw new Error(`${file}: not a usable copy of the last configuration: ${(e as Error).message}`);
  }
}
