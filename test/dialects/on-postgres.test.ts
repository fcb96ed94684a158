// Every dialect's admin tests again, with each certgate's model kept in PostgreSQL (a fresh
// database per data directory) instead of SQLite: one write path, two stores, the same answers.
import { describe, inject, it } from "vitest";
import { usePostgresStores } from "../control/helpers.ts";

const url = inject("pgUrl");
if (url) {
  usePostgresStores(url);
  await import("./fastly/fastly.test.ts");
  await import("./cloudflare/cloudflare.test.ts");
  await import("./apinizer/apinizer.test.ts");
  await import("./native/native.test.ts");
} else describe.skip("every dialect on PostgreSQL (no PostgreSQL here)", () => it("runs where PostgreSQL is installed", () => {}));
