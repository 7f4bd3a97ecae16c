/**
 * Several `troupe serve` processes on one Postgres database, each with a data dir of its own (the
 * takeover tests): the scripted Messages API in this process, `kill -9` and restarts per data
 * dir, and a recursive listing to show that a process wrote nothing under another's data dir.
 */
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startScriptedModel, type Responder, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { isolatedDatabase } from '../support/db.ts';
import { killAll, serviceApi, spawnService, type Instance } from './support.ts';


export interface Cluster {
  model: ScriptedModel;
  /** One data dir per process slot. */
  dataDirs: string[];
  /** A directory outside every data dir (workspaces, gates). */
  scratch: string;
  /** Starts a `troupe serve` on data dir `slot`. */
  start(slot: number): Promise<Instance>;
  api<T = Record<string, unknown>>(instance: Instance, method: string, route: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/** `slots` data dirs on one fresh Postgres database (null on the PGlite pass: these tests need Postgres). */
export async function startCluster(respond: Responder, slots = 2): Promise<Cluster> {
  const db = await isolatedDatabase();
  if (!db) throw new Error('the takeover tests need Postgres (TROUPE_TEST_DB=postgres)');
  const model = await startScriptedModel(respond);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'troupe-takeover-'));
  const dataDirs = await Promise.all(Array.from({ length: slots }, () => mkdtemp(path.join(os.tmpdir(), 'troupe-dd-'))));
  const instances: Instance[] = [];

  const start = (slot: number): Promise<Instance> =>
    spawnService({ dataDir: dataDirs[slot]!, modelUrl: model.url, databaseUrl: db.url, spawned: (i) => instances.push(i) });

  return {
    model,
    dataDirs,
    scratch,
    start,
    api: serviceApi,
    async close() {
      await killAll(instances);
      await model.close();
      await db.drop();
      for (const dir of [scratch, ...dataDirs]) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Every entry under `dir` with its type, size and modification time (not the access time: reading
 * is not writing), sorted: two equal listings mean nothing was created, changed or removed.
 */
export async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(path.join(dir, rel))).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const info = await lstat(path.join(dir, childRel));
      const kind = info.isSymbolicLink() ? 'link' : info.isDirectory() ? 'dir' : 'file';
      out.push(`${childRel} ${kind} ${info.isDirectory() ? '' : info.size} ${info.mtimeMs}`);
      if (kind === 'dir') await walk(childRel);
    }
  };
  await walk('');
  return out;
}
