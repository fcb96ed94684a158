// The key-encryption key that seals a fleet's managed CA key in the store.
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadKek, seal, unseal } from "../../src/control/cakeystore.ts";

describe("managed CA key sealing", () => {
  it("round-trips under the right key, refuses a wrong key and a tampered box, never shows the plaintext", () => {
    const kek = randomBytes(32);
    const key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n";
    const box = seal(kek, key);
    expect(box).not.toContain("PRIVATE");
    expect(seal(kek, key)).not.toBe(box); // a fresh IV each time
    expect(unseal(kek, box)).toBe(key);
    expect(() => unseal(randomBytes(32), box)).toThrow(/does not decrypt with this key-encryption key/);
    const raw = Buffer.from(box, "base64");
    raw[raw.length - 1]! ^= 1;
    expect(() => unseal(kek, raw.toString("base64"))).toThrow(/does not decrypt/);
  });

  it("reads the KEK from CERTGATE_KEK or a file, base64 or hex, and refuses a wrong length", () => {
    const k = randomBytes(32);
    expect(loadKek({ CERTGATE_KEK: k.toString("base64") })).toEqual(k);
    expect(loadKek({ CERTGATE_KEK: k.toString("hex") })).toEqual(k);
    expect(loadKek({})).toBeUndefined();
    const file = join(mkdtempSync(join(tmpdir(), "certgate-kek-")), "kek");
    writeFileSync(file, k.toString("base64") + "\n");
    expect(loadKek({}, file)).toEqual(k);
    expect(() => loadKek({ CERTGATE_KEK: randomBytes(16).toString("base64") })).toThrow(/must be 32 bytes/);
  });
});
