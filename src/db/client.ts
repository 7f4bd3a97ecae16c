/**
 * One `Db` type, two drivers: postgres.js when a `postgres://` URL is given, embedded PGlite
 * otherwise. Queries take a `Db` (or a transaction) as a parameter and never know which.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type { ExtractTablesWithRelations } from 'drizzle-orm';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { migratePgliteClient, migratePostgresUrl } from './migrate.ts';
import * as schema from './schema.ts';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** Anything queries can run on: the database or an open transaction. */
export type Queryable = Db | Tx;

export type StoreConfig =
  | { kind: 'postgres'; url: string; max?: number }
  | { kind: 'pglite'; dataDir?: string };

export interface Store {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /**
   * LISTEN on `channel` (Postgres only; PGlite is one process, so its notifications are
   * in-process hints published directly). `onListen` runs after every (re)connect: the place
   * to catch up on anything missed while disconnected.
   */
  listen(channel: string, onNotify: (payload: string) => void, onListen: () => void): Promise<() => Promise<void>>;
  /** Applies pending migrations (under an advisory lock on Postgres). */
  migrate(): Promise<void>;
  close(): Promise<void>;
}

export async function createStore(config: StoreConfig): Promise<Store> {
  if (config.kind === 'postgres') return createPostgresStore(config.url, config.max ?? 10);
  return createPgliteStore(config.dataDir);
}

function createPostgresStore(url: string, max: number): Store {
  const client = postgres(url, { max, onnotice: () => undefined, connection: { application_name: 'troupe' } });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  return {
    kind: 'postgres',
    db,
    async listen(channel, onNotify, onListen) {
      const sub = await client.listen(channel, onNotify, onListen);
      return () => sub.unlisten();
    },
    migrate: () => migratePostgresUrl(url, async (sql) => [...(await client.unsafe<Record<string, unknown>[]>(sql))]),
    close: () => client.end({ timeout: 5 }),
  };
}

async function createPgliteStore(dataDir: string | undefined): Promise<Store> {
  if (dataDir) await fs.mkdir(path.dirname(dataDir), { recursive: true });
  // A handle for Node's event loop while PGlite compiles its WebAssembly. Without one the loop has
  // nothing to wait for, and Node then waits for *all* of V8's background work, including the
  // optimising compiler's pass over the whole module, before it polls I/O again (nodejs/node#36616):
  // about 0.4 s in which the process runs but answers no socket, measured after every open.
  const keepAlive = setInterval(() => undefined, 60_000);
  let client: PGlite;
  try {
    client = dataDir ? new PGlite(dataDir) : new PGlite();
    await client.waitReady;
  } finally {
    clearInterval(keepAlive);
  }
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    kind: 'pglite',
    db,
    listen: () => Promise.resolve(() => Promise.resolve()),
    migrate: () => migratePgliteClient(client),
    close: () => client.close(),
  };
}

export { schema };
