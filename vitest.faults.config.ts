import { defineConfig } from 'vitest/config';

/**
 * The fault-injection suite: real service processes killed and restarted, Postgres restarted.
 * It runs after the main suite, one file at a time, because a Postgres restart would break any
 * test running beside it.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    exclude: process.env.TROUPE_TEST_DB === 'postgres' ? ['node_modules/**', 'test/**/*.pglite.test.ts'] : ['node_modules/**', 'test/**/*.postgres.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 90_000,
    hookTimeout: 60_000,
  },
});
