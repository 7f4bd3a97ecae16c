/**
 * Before any test: the compiled CLI (`dist/src`) brought up to date, so the tests that spawn
 * `bin/troupe.js` run the code under test, compiled, and never an older build (an incremental
 * build: about two seconds when nothing changed). Then one fresh Postgres database per test run
 * (TROUPE_TEST_DB=postgres), migrated once and dropped at the end. PGlite runs need nothing more:
 * each test file opens its own in-memory PGlite.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { migratePostgresUrl } from '../../src/db/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string | null;
  }
}

const ADMIN_URL = process.env.TROUPE_TEST_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const BUILD = fileURLToPath(new URL('../../bin/build-src.js', import.meta.url));

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  execFileSync(process.execPath, [BUILD], { stdio: 'inherit' });
  if (process.env.TROUPE_TEST_DB !== 'postgres') {
    project.provide('databaseUrl', null);
    return undefined;
  }
  const name = `troupe_test_${Date.now()}_${randomBytes(3).toString('hex')}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database ${name}`);
  } catch (e) {
    await admin.end();
    throw new Error(`cannot create the test database on ${ADMIN_URL} (is Postgres running?): ${String(e)}`);
  }
  const url = ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  await migratePostgresUrl(url);
  project.provide('databaseUrl', url);
  return async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  };
}

// Keep git quiet and deterministic in every test that touches a repository.
try {
  execFileSync('git', ['--version'], { stdio: 'ignore' });
} catch {
  throw new Error('git is required by the test suite');
}
