import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests open real sockets and spawn openssl/curl: give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // The run's own temporary directory (removed at its end), then one real PostgreSQL for the
    // run (the PostgreSQL store's cases), inside it.
    globalSetup: ["test/helpers/tmpdir.setup.ts", "test/helpers/postgres.setup.ts"],
  },
});
