import { defineConfig } from 'vitest/config';

/**
 * Files whose subject is not the database, run once (in the PGlite pass): the machines, test
 * commands and runner output, the terminal view, the page in a browser and the OpenAPI document.
 * Those that start a runtime use it only to have something to show; what they check is the same on
 * either database.
 */
const ONE_PASS = ['test/machines/**', 'test/actors/testing/**', 'test/cli/**', 'test/web/machine-graph.test.ts', 'test/browser/**', 'test/http/openapi.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Postgres-only behaviour (LISTEN/NOTIFY across processes, restarts of the server) lives in
    // *.postgres.test.ts and runs in the Postgres pass only; what is the same whatever the database
    // (the data-dir lock, which is about PGlite's files) lives in *.pglite.test.ts and runs in the
    // PGlite pass only. Nothing is reported as skipped.
    exclude: process.env.TROUPE_TEST_DB === 'postgres' ? ['node_modules/**', 'test/**/*.pglite.test.ts', 'test/faults/**', ...ONE_PASS] : ['node_modules/**', 'test/faults/**', 'test/**/*.postgres.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Generous: a test that hangs still fails, and a slower or busier 2-core machine (some files
    // run whole projects through real processes) does not turn into false failures.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each file gets its own projects and its own fake Messages API; files share one fresh
    // database per run (Postgres) or get their own in-memory PGlite.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
