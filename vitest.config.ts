import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests open real sockets and spawn openssl/curl: give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // One real PostgreSQL for the run (the PostgreSQL store's cases).
    globalSetup: ["test/helpers/postgres.setup.ts"],
  },
});
