/**
 * Applies the committed migrations in `drizzle/`. Drizzle's `migrate()` takes no lock, so on
 * Postgres it runs on a dedicated connection holding a session advisory lock: two processes
 * starting at once apply each migration exactly once.
 *
 * A start on a database that already has every bundled migration (the usual case) does none of
 * that: one read of drizzle's own journal table, compared with `drizzle/meta/_journal.json`, and
 * nothing is locked, created or read from the SQL files. It uses drizzle's rule — a migration is
 * pending when its `when` is newer than the newest one recorded — and drizzle records a batch in
 * one transaction, so a reader never sees half of one: "up to date" read without the lock stays
 * true. Anything else (no journal table yet, a newer bundle) takes the full path, under the lock.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { packagePath } from '../package-files.ts';

export const MIGRATIONS_FOLDER = packagePath('drizzle');
/** Arbitrary constant: "troupe migrations". */
const MIGRATION_LOCK_KEY = 7_312_001;

/** Runs one statement and returns its rows, whatever the driver. */
type ReadRows = (sql: string) => Promise<Record<string, unknown>[]>;

/** The `when` of the newest migration in the bundled `drizzle/` folder. */
async function newestBundled(): Promise<number> {
  const journal = JSON.parse(await readFile(path.join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: { when: number }[] };
  return Math.max(...journal.entries.map((e) => e.when));
}

/** True when the database records every bundled migration as applied (drizzle's rule, above). */
export async function hasEveryMigration(read: ReadRows): Promise<boolean> {
  const [table] = await read(`select to_regclass('drizzle.__drizzle_migrations') is not null as "exists"`);
  if (table?.exists !== true) return false;
  const [row] = await read('select max(created_at) as "newest" from drizzle.__drizzle_migrations');
  const newest = row?.newest === null || row?.newest === undefined ? null : Number(row.newest);
  return newest !== null && newest >= (await newestBundled());
}

/**
 * Brings the database at `url` up to date. `read` (the store's own pool) answers "already up to
 * date?" without opening a connection of its own; only when it is not does a dedicated one take
 * the lock and migrate.
 */
export async function migratePostgresUrl(url: string, read?: ReadRows): Promise<void> {
  if (read && (await hasEveryMigration(read))) return;
  const client = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    try {
      await migratePostgres(drizzlePostgres(client), { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** PGlite is one process's (the data-dir lock): no advisory lock needed. */
export async function migratePgliteClient(client: PGlite): Promise<void> {
  if (await hasEveryMigration(async (sql) => (await client.query<Record<string, unknown>>(sql)).rows)) return;
  await migratePglite(drizzlePglite(client), { migrationsFolder: MIGRATIONS_FOLDER });
}
