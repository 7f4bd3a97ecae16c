/**
 * Migrations, on either database: a new one gets every bundled migration; an up-to-date one is
 * recognised (and left alone) from drizzle's journal table; a newer bundle is pending.
 * Postgres-only (two sessions at once, the lock): migrate.postgres.test.ts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createStore, type Store } from '../../src/db/client.ts';
import { MIGRATIONS_FOLDER, hasEveryMigration } from '../../src/db/migrate.ts';
import { isolatedDatabase } from '../support/db.ts';

const BUNDLED = (JSON.parse(readFileSync(path.join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] }).entries.length;
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A new, empty database: in-memory PGlite, or a Postgres database of its own. */
async function newStore(): Promise<{ store: Store; url: string | null }> {
  const iso = await isolatedDatabase();
  if (iso) cleanups.push(() => iso.drop());
  const store = await createStore(iso ? { kind: 'postgres', url: iso.url, max: 2 } : { kind: 'pglite' });
  cleanups.push(() => store.close());
  return { store, url: iso?.url ?? null };
}

/** Rows of one statement, whatever the driver (postgres.js: an array; PGlite: `{ rows }`). */
function reader(store: Store) {
  return async (sql: string): Promise<Record<string, unknown>[]> => {
    const result: unknown = await store.db.execute(sql);
    return Array.isArray(result) ? (result as Record<string, unknown>[]) : (result as { rows: Record<string, unknown>[] }).rows;
  };
}

async function applied(store: Store): Promise<number> {
  const [row] = await reader(store)('select count(*)::int as n from drizzle.__drizzle_migrations');
  return Number(row?.n);
}

describe('migrations', () => {
  it('a new database gets every bundled migration; a second migrate finds it up to date and changes nothing', async () => {
    const { store } = await newStore();
    expect(await hasEveryMigration(reader(store))).toBe(false);
    await store.migrate();
    expect(await hasEveryMigration(reader(store))).toBe(true);
    expect(await applied(store)).toBe(BUNDLED);
    await store.migrate();
    expect(await applied(store)).toBe(BUNDLED);
  });

  it('a bundle newer than the newest recorded migration is pending', async () => {
    const { store } = await newStore();
    await store.migrate();
    await store.db.execute('update drizzle.__drizzle_migrations set created_at = created_at - 1 where created_at = (select max(created_at) from drizzle.__drizzle_migrations)');
    expect(await hasEveryMigration(reader(store))).toBe(false);
  });
});
