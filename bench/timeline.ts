/**
 * Where the time of a scheduling run goes: the same run as `scheduling.ts`, traced. Prints each
 * task's timeline (dispatch committed → worker states → model call → records committed → the
 * completion committed) relative to its dispatch, the gaps between the model call and the work
 * around it, and every transaction the outbox ran (by caller: count, mean and total time).
 *
 *   node --import tsx bench/timeline.ts --db=postgres --tasks=20 --latency=200
 */
import { Outbox } from '../src/events/outbox.ts';
import { EventBus } from '../src/events/bus.ts';
import type { TroupeEvent } from '../src/events/types.ts';
import { childEnvFrom } from '../src/config.ts';
import { silentLogger } from '../src/logger.ts';
import { Runtime } from '../src/actors/runtime/runtime.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { criticalPath, layeredDag } from './dag.ts';
import { benchAnswer, benchClient, benchProject, plainWorkspace, type DbKind } from './harness.ts';
import { startScriptedModel } from '../src/scripted-model/server.ts';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { schema, type Db, type Store } from '../src/db/client.ts';
import { migratePgliteClient, migratePostgresUrl } from '../src/db/migrate.ts';
import { freshDatabase } from './harness.ts';

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const db = arg('db', 'postgres') as DbKind;
const n = Number(arg('tasks', '20'));
const latency = Number(arg('latency', '200'));
const width = Number(arg('width', '4'));

const t0 = performance.now();
const now = () => performance.now() - t0;

// ── transactions, by caller ───────────────────────────────────────────────────────────────
const txStats = new Map<string, { count: number; totalMs: number; maxMs: number }>();
function caller(): string {
  const stack = new Error().stack?.split('\n').slice(3) ?? [];
  const frame = stack.find((l) => /src\/(actors|events\/bus|db\/(?!client|retry))/.test(l) && !/outbox\.ts|node_modules/.test(l)) ?? stack[0] ?? '?';
  return (/\/src\/(.*?):(\d+)/.exec(frame) ?? [])[1] ?? frame.trim();
}
const proto = Outbox.prototype as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
for (const name of ['transact', 'append'] as const) {
  const original = proto[name]!;
  proto[name] = function (this: unknown, ...a: unknown[]) {
    const who = `${name} ${caller()}`;
    const start = performance.now();
    const p = original.apply(this, a);
    const note = () => {
      const ms = performance.now() - start;
      const s = txStats.get(who) ?? { count: 0, totalMs: 0, maxMs: 0 };
      s.count++;
      s.totalMs += ms;
      s.maxMs = Math.max(s.maxMs, ms);
      txStats.set(who, s);
    };
    p.then(note, note);
    return p;
  };
}

// ── statements, by caller (Drizzle's logger: BEGIN and COMMIT are not among them) ─────────
const stmtStats = new Map<string, number>();
let counting = false;
const logger = {
  logQuery(query: string) {
    if (!counting) return;
    const who = `${caller()} ${query.slice(0, 30).replace(/\s+/g, ' ')}`;
    stmtStats.set(who, (stmtStats.get(who) ?? 0) + 1);
  },
};

async function tracedStore(kind: DbKind): Promise<{ store: Store; close(): Promise<void> }> {
  if (kind === 'pglite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-db-'));
    const client = new PGlite(path.join(dir, 'pgdata'));
    await client.waitReady;
    await migratePgliteClient(client);
    const db = drizzlePglite(client, { schema, logger }) as unknown as Db;
    const store: Store = { kind, db, listen: () => Promise.resolve(() => Promise.resolve()), migrate: () => Promise.resolve(), close: () => client.close() };
    return { store, close: async () => { await client.close(); await rm(dir, { recursive: true, force: true }); } };
  }
  const fresh = await freshDatabase();
  await migratePostgresUrl(fresh.url);
  const client = postgres(fresh.url, { max: 10, onnotice: () => undefined });
  const db = drizzlePostgres(client, { schema, logger }) as unknown as Db;
  const store: Store = {
    kind,
    db,
    async listen(channel, onNotify, onListen) {
      const sub = await client.listen(channel, onNotify, onListen);
      return () => sub.unlisten();
    },
    migrate: () => Promise.resolve(),
    close: () => client.end({ timeout: 5 }),
  };
  return { store, close: async () => { await client.end({ timeout: 5 }); await fresh.drop(); } };
}

// ── events, when published (right after their commit) ─────────────────────────────────────
const published: { at: number; e: TroupeEvent }[] = [];
const busProto = EventBus.prototype as unknown as { published: (this: unknown, stored: TroupeEvent[]) => void };
const originalPublished = busProto.published;
busProto.published = function (this: unknown, stored: TroupeEvent[]) {
  const at = now();
  for (const e of stored) published.push({ at, e });
  originalPublished.call(this, stored);
};

/** A worker's state by its innermost name (`generating`, under whatever parent groups them). */
function leaf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return String(value);
  const entries = Object.entries(value as Record<string, unknown>);
  return entries.length === 1 ? leaf(entries[0]![1]) : JSON.stringify(value);
}

// ── worker states, as the actors enter them ────────────────────────────────────────────────
const states: { at: number; actor: string; state: string; taskKey: string | null }[] = [];

async function main() {
  const tasks = layeredDag(n, width, 7);
  const opened = await tracedStore(db);
  const model = await startScriptedModel((req) => {
    const reply = benchAnswer(req.taskKey ?? 'x');
    return latency > 0 ? { kind: 'delay', ms: latency, then: reply } : reply;
  });
  const modelStart = Date.now() - performance.now();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-'));
  const bus = new EventBus(opened.store, silentLogger);
  const runtime = new Runtime({
    store: opened.store,
    bus,
    logger: silentLogger,
    client: benchClient(model),
    dataDir,
    childEnv: childEnvFrom(process.env),
    resume: false,
    inspectors: [
      (ev) => {
        if (ev.type !== '@xstate.snapshot') return;
        const id = (ev.actorRef as unknown as { id: string }).id;
        const snap = ev.snapshot as { value?: unknown; context?: { job?: { key?: string } | null } };
        const value = leaf(snap.value);
        const last = states.findLast((s) => s.actor === id);
        if (last?.state === value) return;
        states.push({ at: now(), actor: id, state: value, taskKey: snap.context?.job?.key ?? null });
      },
    ],
  });
  await runtime.start();
  const ws = await plainWorkspace();
  try {
    const projectId = await benchProject(
      runtime,
      { name: 'timeline', testCommand: ['true'], workspace: ws.path, config: { maxConcurrency: width, maxAgents: width, maxCorrectionAttempts: 0 } },
      tasks,
    );
    const ended = new Promise<void>((resolve) => {
      const sub = bus.subscribe({ projectId, types: ['run.completed', 'run.blocked', 'run.failed'] }, () => {
        sub.close();
        resolve();
      });
    });
    const started = now();
    counting = true;
    await runtime.startRun(projectId);
    await ended;
    const makespan = now() - started;
    counting = false;
    report(tasks, started, makespan, model.requests.map((r) => ({ key: r.taskKey, at: r.receivedAt - modelStart - t0, answered: (r.answeredAt ?? 0) - modelStart - t0 })));
  } finally {
    await runtime.stop();
    await bus.stop();
    await rm(dataDir, { recursive: true, force: true });
    await ws.close();
    await model.close();
    await opened.close();
  }
}

function report(tasks: ReturnType<typeof layeredDag>, started: number, makespan: number, calls: { key: string | null; at: number; answered: number }[]) {
  const path = criticalPath(tasks);
  const bound = path * (latency + 3);
  console.log(`${db} ${n} tasks, ${latency} ms: makespan ${makespan.toFixed(0)} ms, bound ≈ ${bound} (${(makespan / bound).toFixed(3)} ×)`);
  const ev = (key: string, type: string, pred: (e: TroupeEvent) => boolean = () => true) =>
    published.find((p) => p.e.type === type && (p.e.data as { key?: string }).key === key && pred(p.e))?.at;
  const byTask = (id: string, type: string) => published.find((p) => p.e.type === type && p.e.taskId === id)?.at;
  const rows: Record<string, number>[] = [];
  for (const t of tasks) {
    const assigned = published.find((p) => p.e.type === 'task.assigned' && (p.e.data as { key: string }).key === t.key);
    if (!assigned) continue;
    const id = assigned.e.taskId!;
    const a = assigned.at;
    const call = calls.find((c) => c.key === t.key);
    const st = (s: string) => states.find((x) => x.taskKey === t.key && x.state === s)?.at;
    const done = ev(t.key, 'task.status_changed', (e) => (e.data as { to: string }).to === 'completed');
    const depsDone = Math.max(started, ...t.dependsOn.map((d) => ev(d, 'task.status_changed', (e) => (e.data as { to: string }).to === 'completed') ?? 0));
    const r: Record<string, number> = {
      depsDone: depsDone - started,
      assign: a - depsDone,
      prep: (st('preparing') ?? a) - a,
      gen: (st('generating') ?? a) - a,
      modelIn: (call?.at ?? a) - a,
      modelOut: (call?.answered ?? a) - a,
      usage: (byTask(id, 'llm.usage') ?? a) - a,
      apply: (st('applying') ?? a) - a,
      applied: (byTask(id, 'files.applied') ?? a) - a,
      test: (st('testing') ?? a) - a,
      tested: (byTask(id, 'test.result') ?? a) - a,
      testMs: (published.find((p) => p.e.type === 'test.result' && p.e.taskId === id)?.e.data as { durationMs?: number } | undefined)?.durationMs ?? -1,
      commit: (st('committing') ?? a) - a,
      idle: (states.find((x) => x.at > a && x.state === 'idle' && x.actor === assigned.e.agentId)?.at ?? a) - a,
      done: (done ?? a) - a,
    };
    rows.push(r);
    console.log(t.key.padEnd(7), Object.entries(r).map(([k, v]) => `${k} ${v.toFixed(0)}`).join('  '));
  }
  const mean = (k: string) => rows.reduce((s, r) => s + r[k]!, 0) / rows.length;
  console.log('mean   ', Object.keys(rows[0]!).map((k) => `${k} ${mean(k).toFixed(1)}`).join('  '));
  console.log(`per task beyond the model (done - (modelOut - modelIn)) + assign: ${(mean('done') - (mean('modelOut') - mean('modelIn')) + mean('assign')).toFixed(1)} ms`);
  console.log('\ntransactions by caller (count, mean ms, max ms, total ms):');
  for (const [who, s] of [...txStats.entries()].sort((x, y) => y[1].totalMs - x[1].totalMs)) {
    console.log(`  ${who.padEnd(60)} ${String(s.count).padStart(4)} ${(s.totalMs / s.count).toFixed(1).padStart(7)} ${s.maxMs.toFixed(1).padStart(7)} ${s.totalMs.toFixed(0).padStart(7)}`);
  }
  console.log('\nstatements by caller (per task):');
  let total = 0;
  for (const [who, c] of [...stmtStats.entries()].sort((x, y) => y[1] - x[1])) {
    total += c;
    console.log(`  ${who.padEnd(90)} ${(c / n).toFixed(2)}`);
  }
  console.log(`  total per task ${(total / n).toFixed(1)}; transactions per task ${([...txStats.values()].reduce((a, s) => a + s.count, 0) / n).toFixed(2)}`);
  const types = new Map<string, number>();
  for (const p of published) types.set(p.e.type, (types.get(p.e.type) ?? 0) + 1);
  console.log('\nevents:', [...types.entries()].map(([k, v]) => `${k} ${v}`).join(', '));
}

await main();
