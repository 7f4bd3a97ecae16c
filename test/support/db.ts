import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { createStore, type Store } from '../../src/db/client.ts';

export const dbKind = (): 'postgres' | 'pglite' => (inject('databaseUrl') ? 'postgres' : 'pglite');

/**
 * The run's Postgres database, or a fresh in-memory PGlite (migrated) for this file.
 * `isolated`: a database of its own, for tests that resume "every active run" and must not
 * see other files' runs (dropped again by `close()`).
 */
export async function createTestStore(opts: { isolated?: boolean } = {}): Promise<Store> {
  const url = inject('databaseUrl');
  if (!url) {
    const store = await createStore({ kind: 'pglite' });
    await store.migrate();
    return store;
  }
  if (!opts.isolated) return createStore({ kind: 'postgres', url, max: 5 });
  const iso = (await isolatedDatabase())!;
  const store = await createStore({ kind: 'postgres', url: iso.url, max: 5 });
  await store.migrate();
  return {
    ...store,
    async close() {
      await store.close();
      await iso.drop();
    },
  };
}

/** A fresh, empty Postgres database of its own (null on the PGlite pass). */
export async function isolatedDatabase(): Promise<{ url: string; drop(): Promise<void> } | null> {
  const url = inject('databaseUrl');
  if (!url) return null;
  const name = `${url.slice(url.lastIndexOf('/') + 1)}_iso_${randomBytes(3).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database ${name}`);
  return {
    url: url.replace(/\/[^/]*$/, `/${name}`),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
