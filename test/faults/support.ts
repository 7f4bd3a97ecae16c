/**
 * Fault injection with real processes: the `troupe serve` executable spawned on a data dir (and
 * an isolated Postgres database on that pass), the scripted Messages API in this process, a git
 * shim that can hold a merge, `kill -9` at chosen points, restarts on the same data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startScriptedModel, type Responder, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { isolatedDatabase } from '../support/db.ts';
import { makeGitShim } from '../support/git-shim.ts';

const BIN = fileURLToPath(new URL('../../bin/troupe.js', import.meta.url));

export interface Instance {
  url: string;
  child: ChildProcess;
  exit: Promise<number | null>;
  stderr(): string;
}

export interface Rig {
  model: ScriptedModel;
  dataDir: string;
  /** The rig's own Postgres database (null on the PGlite pass). */
  databaseUrl: string | null;
  /** While this file exists, `git rebase` (the merge of a task) waits. */
  holdMerge: string;
  /** Created by the shim when a merge is being held. */
  mergeHeld: string;
  start(): Promise<Instance>;
  api<T = Record<string, unknown>>(instance: Instance, method: string, route: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/** Resolves once `check()` holds, polling (for facts outside this process: files, other processes). */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Spawns `troupe serve` on `dataDir` against the scripted model (and Postgres when given) and
 * resolves once it listens; its stderr (the JSON log) is kept for the test to read.
 */
export async function spawnService(o: {
  dataDir: string;
  modelUrl: string;
  databaseUrl?: string | undefined;
  path?: string;
  /** Told of the process at once (before it listens), so a cleanup can kill one that never does. */
  spawned?: (instance: Instance) => void;
}): Promise<Instance> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', o.dataDir], {
    env: {
      PATH: o.path ?? process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ANTHROPIC_BASE_URL: o.modelUrl,
      ANTHROPIC_API_KEY: 'sk-fault',
      TROUPE_MODEL_MAX_RETRIES: '0',
      ...(o.databaseUrl ? { DATABASE_URL: o.databaseUrl } : {}),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const instance: Instance = { url: '', child, exit, stderr: () => err };
  o.spawned?.(instance);
  await until(
    () => {
      const line = err.split('\n').find((l) => l.includes('"troupe listening"'));
      if (line) instance.url = (JSON.parse(line) as { url: string }).url;
      if (child.exitCode !== null) throw new Error(`troupe exited with ${child.exitCode}: ${err}`);
      return instance.url !== '';
    },
    'the service to listen',
    30_000,
  );
  return instance;
}

/** A JSON request to a spawned service: status and parsed body. */
export async function serviceApi<T>(instance: Instance, method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${instance.url}${route}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Kills (SIGKILL) every spawned service still running and waits for each to exit. */
export async function killAll(instances: readonly Instance[]): Promise<void> {
  for (const i of instances) {
    if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGKILL');
    await i.exit;
  }
}

export async function startRig(respond: Responder): Promise<Rig> {
  const model = await startScriptedModel(respond);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-fault-'));
  const db = await isolatedDatabase();
  const shim = await makeGitShim(dataDir);
  const { hold: holdMerge, held: mergeHeld } = shim;
  const instances: Instance[] = [];

  const start = async (): Promise<Instance> => {
    return spawnService({ dataDir, modelUrl: model.url, databaseUrl: db?.url, path: `${shim.dir}:${process.env.PATH ?? ''}`, spawned: (i) => instances.push(i) });
  };

  return {
    model,
    dataDir,
    databaseUrl: db?.url ?? null,
    holdMerge,
    mergeHeld,
    start,
    api: serviceApi,
    async close() {
      await killAll(instances);
      await model.close();
      await db?.drop();
      if (existsSync(holdMerge)) await rm(holdMerge);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** `kill -9`: no shutdown, no flush, no lease released. */
export async function crash(instance: Instance): Promise<void> {
  instance.child.kill('SIGKILL');
  await instance.exit;
}
