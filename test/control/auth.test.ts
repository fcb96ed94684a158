// Scoped tokens as another fleet node sees them: a token added to the store behind this
// process's cached list (its notification not arrived yet) is found on first use, and
// unknown tokens cause a bounded number of store reads, whatever their number.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Authenticator, newTokenSecret, sha256 } from "../../src/control/auth.ts";
import { SqliteStore, type Store } from "../../src/control/store.ts";

/** The real store, counting its token-list reads. */
function counted(store: Store): { store: Store; reads: () => number } {
  let n = 0;
  const listTokens = store.listTokens.bind(store);
  store.listTokens = () => (n++, listTokens());
  return { store, reads: () => n };
}

describe("Authenticator", () => {
  it("finds a token added behind its cache (another node's, not notified yet) on first use", async () => {
    const { store } = counted(SqliteStore.open(mkdtempSync(join(tmpdir(), "certgate-auth-"))));
    const auth = new Authenticator("operator-token", store);
    expect(await auth.authenticate("operator-token")).toMatchObject({ token_id: "admin" }); // the list is cached now
    const secret = newTokenSecret();
    await store.addToken({ id: "t1", name: "ci", hash: sha256(secret).toString("hex"), read_only: true, account_id: null, created_at: new Date().toISOString() });
    expect(await auth.authenticate(secret)).toEqual({ token_id: "t1", read_only: true, account_id: null });
  });

  it("unknown tokens: at most 5 extra store reads a second, and still refused", async () => {
    const { store, reads } = counted(SqliteStore.open(mkdtempSync(join(tmpdir(), "certgate-auth-"))));
    const auth = new Authenticator("operator-token", store);
    const results = [];
    for (let i = 0; i < 50; i++) results.push(await auth.authenticate(newTokenSecret()));
    expect(results.every((r) => r === null)).toBe(true);
    // One first load, then at most 5 re-reads in this second (the loop takes far less than 2 s; allow two windows).
    expect(reads()).toBeLessThanOrEqual(11);
    expect(reads()).toBeGreaterThanOrEqual(2);
  });
});
