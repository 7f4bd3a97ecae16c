/**
 * What every benchmark needs: a store (PGlite on disk, or a fresh Postgres database), the
 * scripted Messages API with a configurable latency, a runtime, and a way to time a run.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import postgres from 'postgres';
import { Runtime } from '../src/actors/runtime/runtime.ts';
import { childEnvFrom } from '../src/config.ts';
import { createStore, type Store } from '../src/db/client.ts';
import { createProjectSchema, type CreateProjectInput } from '../src/domain/inputs.ts';
import { EventBus } from '../src/events/bus.ts';
import { silentLogger } from '../src/logger.ts';
import { startScriptedModel, type Reply, type ScriptedModel } from '../src/scripted-model/server.ts';
import type { BenchTask } from './dag.ts';

export type DbKind = 'pglite' | 'postgres';

export const ADMIN_URL = process.env.TROUPE_BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchStore {
  store: Store;
  close(): Promise<void>;
}

/** A fresh, empty Postgres database (for a service that opens and migrates it itself). */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `troupe_bench_${randomBytes(4).toString('hex')}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database ${name}`);
  return {
    url: ADMIN_URL.replace(/\/[^/]*$/, `/${name}`),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/** A store of its own: PGlite files in a temporary directory, or a fresh Postgres database. */
export async function openStore(kind: DbKind): Promise<BenchStore> {
  if (kind === 'pglite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-db-'));
    const store = await createStore({ kind: 'pglite', dataDir: path.join(dir, 'pgdata') });
    await store.migrate();
    return {
      store,
      async close() {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  const db = await freshDatabase();
  const store = await createStore({ kind: 'postgres', url: db.url, max: 10 });
  await store.migrate();
  return {
    store,
    async close() {
      await store.close();
      await db.drop();
    },
  };
}

/** A worker's answer for a benchmark task: one small file. */
export function benchAnswer(key: string): Reply {
  return {
    kind: 'tool',
    name: 'write_files',
    input: { files: [{ path: `out/${key}.txt`, action: 'create', content: `${key}\n` }], explanation: 'bench' },
  };
}

/** The scripted model answering every worker request after `latencyMs`. */
export function benchModel(latencyMs: number): Promise<ScriptedModel> {
  return startScriptedModel((req) => {
    const reply = benchAnswer(req.taskKey ?? 'x');
    return latencyMs > 0 ? { kind: 'delay', ms: latencyMs, then: reply } : reply;
  });
}

export function benchClient(model: ScriptedModel): Anthropic {
  return new Anthropic({ baseURL: model.url, apiKey: 'bench', maxRetries: 0 });
}

export interface BenchRuntime {
  runtime: Runtime;
  bus: EventBus;
  dataDir: string;
  close(): Promise<void>;
}

export async function benchRuntime(store: Store, client: Anthropic): Promise<BenchRuntime> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-'));
  const bus = new EventBus(store, silentLogger);
  const runtime = new Runtime({ store, bus, logger: silentLogger, client, dataDir, childEnv: childEnvFrom(process.env), resume: false });
  await runtime.start();
  return {
    runtime,
    bus,
    dataDir,
    async close() {
      await runtime.stop();
      await bus.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A workspace that is a plain directory (shared mode, no git): the same files on both sides of a comparison. */
export async function plainWorkspace(): Promise<{ path: string; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-ws-'));
  return { path: dir, close: () => rm(dir, { recursive: true, force: true }) };
}

/** Creates a project with the tasks; returns its id. */
export async function benchProject(runtime: Runtime, body: CreateProjectInput, tasks: BenchTask[]): Promise<string> {
  const project = await runtime.createProject(createProjectSchema.parse(body));
  await runtime.addTasks(
    project.id,
    tasks.map((t) => ({ key: t.key, title: t.key, description: `bench task ${t.key}`, agentType: 'backend' as const, dependsOn: t.dependsOn, priority: 2 })),
  );
  return project.id;
}

/** Starts a run and resolves with its wall time (ms) and final event type. */
export async function timeRun(b: BenchRuntime, projectId: string): Promise<{ ms: number; end: string }> {
  const started = performance.now();
  const ended = new Promise<string>((resolve) => {
    const sub = b.bus.subscribe({ projectId, types: ['run.completed', 'run.blocked', 'run.failed', 'run.cancelled'] }, (e) => {
      sub.close();
      resolve(e.type);
    });
  });
  await b.runtime.startRun(projectId);
  const end = await ended;
  return { ms: performance.now() - started, end };
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
