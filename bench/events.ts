/**
 * Events: how many can be appended and published per second (one per transaction, and in
 * batches), and how fast they reach many SSE clients over real HTTP at a steady 1 000 events/s.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/logger.ts';
import { EventBus } from '../src/events/bus.ts';
import { Outbox } from '../src/events/outbox.ts';
import { event } from '../src/events/types.ts';
import { loadConfig } from '../src/config.ts';
import { startService } from '../src/main.ts';
import { benchClient, benchModel, freshDatabase, openStore, round, type DbKind } from './harness.ts';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface ThroughputResult {
  db: DbKind;
  events: number;
  perTransaction: number;
  eventsPerSecond: number;
}

export interface FanoutResult {
  db: DbKind;
  clients: number;
  ratePerSecond: number;
  events: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const sample = (i: number, projectId: string) =>
  event('progress', { total: i, pending: 0, inProgress: 0, review: 0, completed: i, failed: 0, blocked: 0, cancelled: 0, percent: 0 }, { projectId });

/** Appends `n` events, `perTx` per transaction, until an in-process subscriber has them all. */
export async function throughput(db: DbKind, n: number, perTx: number): Promise<ThroughputResult> {
  const opened = await openStore(db);
  const bus = new EventBus(opened.store, silentLogger);
  await bus.start();
  const outbox = new Outbox(opened.store, bus);
  const projectId = `prj_bench_${perTx}`;
  try {
    let received = 0;
    let resolveAll!: () => void;
    const all = new Promise<void>((resolve) => (resolveAll = resolve));
    const sub = bus.subscribe({ projectId }, () => {
      if (++received === n) resolveAll();
    });
    const started = performance.now();
    for (let i = 0; i < n; i += perTx) {
      await outbox.transact(async (_tx, emit) => {
        for (let j = i; j < Math.min(n, i + perTx); j++) emit(sample(j, projectId));
      });
    }
    await all;
    const seconds = (performance.now() - started) / 1000;
    sub.close();
    return { db, events: n, perTransaction: perTx, eventsPerSecond: round(n / seconds, 0) };
  } finally {
    await bus.stop();
    await opened.close();
  }
}

/**
 * A real service, `clients` SSE clients in another process, and events emitted at `rate` per
 * second (batches every 10 ms) for `seconds`; latency = receive time − the event's `at`.
 */
export async function fanout(db: DbKind, clients: number, rate: number, seconds: number): Promise<FanoutResult> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-fanout-'));
  const model = await benchModel(0);
  const fresh = db === 'postgres' ? await freshDatabase() : null;
  const config = loadConfig({ PATH: process.env.PATH, ...(fresh ? { DATABASE_URL: fresh.url } : {}) }, { port: 0, dataDir });
  const service = await startService(config, { logger: silentLogger, client: benchClient(model) });
  const total = Math.round(rate * seconds);
  try {
    // An explicit workspace must exist: a plain directory (no run starts here).
    await mkdir(path.join(dataDir, 'ws'));
    const project = await service.runtime.createProject({ name: 'fanout', testCommand: ['true'], workspace: path.join(dataDir, 'ws') });
    const url = `${service.url}/api/projects/${project.id}/events?since=${service.bus.seq}`;
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./sse-clients.ts', import.meta.url)), url, String(clients), String(total)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const ready = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) resolve();
      });
    });
    const finished = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await ready;
    const perTick = Math.max(1, Math.round(rate / 100));
    for (let i = 0; i < total; i += perTick) {
      const tick = performance.now();
      await service.runtime.outbox.transact(async (_tx, emit) => {
        for (let j = i; j < Math.min(total, i + perTick); j++) emit(sample(j, project.id));
      });
      const wait = 10 - (performance.now() - tick);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const code = await finished;
    if (code !== 0) throw new Error(`the SSE clients exited with ${code}`);
    const line = out.split('\n').find((l) => l.startsWith('{'))!;
    const r = JSON.parse(line) as { p50: number; p99: number; max: number };
    return { db, clients, ratePerSecond: rate, events: total, p50Ms: r.p50, p99Ms: r.p99, maxMs: r.max };
  } finally {
    await service.stop();
    await model.close();
    await fresh?.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
