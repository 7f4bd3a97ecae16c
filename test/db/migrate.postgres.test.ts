/**
 * Migrations on Postgres: two sessions (two processes starting at once) migrating one new database
 * apply each migration exactly once (the advisory lock); a start on an up-to-date database does not
 * wait for that lock.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { createStore } from '../../src/db/client.ts';
import { MIGRATIONS_FOLDER, migratePostgresUrl } from '../../src/db/migrate.ts';
import { isolatedDatabase } from '../support/db.ts';

const BUNDLED = (JSON.parse(readFileSync(path.join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] }).entries.length;
/** The key src/db/migrate.ts locks. */
const MIGRATION_LOCK_KEY = 7_312_001;
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function session(url: string) {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  cleanups.push(() => sql.end());
  return sql;
}

describe('migrations on Postgres', () => {
  it('two sessions migrating one new database at once apply each migration once; up to date, a held lock is not waited for', async () => {
    const iso = (await isolatedDatabase())!;
    cleanups.push(() => iso.drop());
    const store = await createStore({ kind: 'postgres', url: iso.url, max: 2 });
    cleanups.push(() => store.close());
    const other = session(iso.url);
    await Promise.all([store.migrate(), migratePostgresUrl(iso.url, async (q) => [...(await other.unsafe<Record<string, unknown>[]>(q))])]);
    const count = async () => (await other<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`)[0]!.n;
    expect(await count()).toBe(BUNDLED);
    // Someone holds the lock (a process migrating a newer bundle): an up-to-date start goes on.
    const holder = session(iso.url);
    await holder`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await store.migrate();
    expect(await count()).toBe(BUNDLED);
  });
});
