import { inject } from 'vitest';
import { createStore, type Store } from '../../src/db/client.ts';

/** The run's Postgres database, or a fresh in-memory PGlite (migrated) for this file. */
export async function createTestStore(): Promise<Store> {
  const url = inject('databaseUrl');
  if (url) return createStore({ kind: 'postgres', url, max: 5 });
  const store = await createStore({ kind: 'pglite' });
  await store.migrate();
  return store;
}

export const dbKind = (): 'postgres' | 'pglite' => (inject('databaseUrl') ? 'postgres' : 'pglite');
