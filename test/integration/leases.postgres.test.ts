/**
 * Runtimes ("processes") on one Postgres database: a run is executed by the process that holds
 * its lease; any other one serves reads and carries control requests to the owner, which
 * answers them as if it had received them; every write of the run is fenced by the lease; an
 * owner is alive while its liveness lock is held (whatever its host name and pid), and its runs
 * are adopted as soon as it is gone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { eq, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { ownerLockKey } from '../../src/actors/runtime/leases.ts';
import { Runtime } from '../../src/actors/runtime/runtime.ts';
import { childEnvFrom } from '../../src/config.ts';
import { createStore, type Store } from '../../src/db/client.ts';
import { runs, tasks } from '../../src/db/schema.ts';
import { createProjectSchema, type CreateProjectInput } from '../../src/domain/inputs.ts';
import { EventBus } from '../../src/events/bus.ts';
import type { TroupeEvent } from '../../src/events/types.ts';
import { silentLogger } from '../../src/logger.ts';
import { startScriptedModel, type Responder, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { isolatedDatabase } from '../support/db.ts';
import { writeFiles } from '../support/replies.ts';
import { isAlive } from '../actors/testing/workspace.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

interface Proc {
  runtime: Runtime;
  bus: EventBus;
}

interface Rig {
  url: string;
  store: Store;
  model: ScriptedModel;
  dataDir: string;
  /** A git workspace whose test command waits for `gate` (and appends its pid to `starts`) once a task wrote done.txt. */
  workspace: string;
  gate: string;
  starts: string;
  runtime(opts?: { leaseMs?: number; resume?: boolean }): Promise<Proc>;
  project(body: Omit<CreateProjectInput, 'name' | 'testCommand' | 'workspace'> & { name?: string }, keys: string[], via: Proc): Promise<string>;
  pids(): Promise<number[]>;
}

async function rig(respond: Responder = () => writeFiles({ 'done.txt': 'done\n' })): Promise<Rig> {
  const db = (await isolatedDatabase())!;
  const store = await createStore({ kind: 'postgres', url: db.url, max: 5 });
  await store.migrate();
  cleanups.push(async () => {
    await store.close();
    await db.drop();
  });
  const model = await startScriptedModel(respond);
  cleanups.push(() => model.close());
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-lease-'));
  const gate = path.join(dataDir, 'gate');
  const starts = path.join(dataDir, 'starts');
  cleanups.push(async () => {
    // Lets any test process still waiting end.
    await writeFile(gate, '');
    await rm(dataDir, { recursive: true, force: true });
  });
  const workspace = path.join(dataDir, 'ws');
  execFileSync('git', ['init', '-q', '-b', 'main', workspace]);
  await writeFile(
    path.join(workspace, 'gate.js'),
    // The baseline (no done.txt yet: the base tree) passes at once and is not counted; a task's tests wait.
    `const fs = require('fs');\nif (!fs.existsSync('done.txt')) { console.log('# tests 1\\n# pass 1'); process.exit(0); }\n` +
      `fs.appendFileSync(${JSON.stringify(starts)}, process.pid + '\\n');\n` +
      `const wait = () => fs.existsSync(${JSON.stringify(gate)}) ? console.log('# tests 1\\n# pass 1') : setTimeout(wait, 20);\nwait();\n`,
  );
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'add', '-A'], { cwd: workspace });
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'init'], { cwd: workspace });

  return {
    url: db.url,
    store,
    model,
    dataDir,
    workspace,
    gate,
    starts,
    async runtime(opts = {}) {
      const bus = new EventBus(store, silentLogger);
      const runtime = new Runtime({
        store,
        bus,
        logger: silentLogger,
        client: new Anthropic({ baseURL: model.url, apiKey: 'sk-test', maxRetries: 0 }),
        dataDir,
        childEnv: childEnvFrom(process.env),
        leaseMs: opts.leaseMs ?? 3000,
        resume: opts.resume,
      });
      await runtime.start();
      cleanups.push(async () => {
        await runtime.stop();
        await bus.stop();
      });
      return { runtime, bus };
    },
    async project(body, keys, via) {
      const p = await via.runtime.createProject(
        createProjectSchema.parse({ name: 'leased', testCommand: ['node', 'gate.js'], workspace, ...body, config: { sandbox: { mode: 'none' }, ...body.config } }),
      );
      await via.runtime.addTasks(
        p.id,
        keys.map((key) => ({ key, title: key.toUpperCase(), description: '', dependsOn: [], priority: 2 })),
      );
      return p.id;
    },
    async pids() {
      if (!existsSync(starts)) return [];
      return (await readFile(starts, 'utf8')).split('\n').filter(Boolean).map(Number);
    },
  };
}

function waitFor(bus: EventBus, projectId: string, match: (e: TroupeEvent) => boolean): Promise<TroupeEvent> {
  return new Promise((resolve) => {
    const sub = bus.subscribe({ projectId, fromSeq: 0 }, (e) => {
      if (match(e)) {
        sub.close();
        resolve(e);
      }
    });
  });
}

/** Polls a fact outside the event log (another runtime's memory, a process table). */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


const statusTo = (key: string, to: string) => (e: TroupeEvent) =>
  e.type === 'task.status_changed' && (e.data as { key: string }).key === key && (e.data as { to: string }).to === to;

/** Another "process" that is alive as long as this connection holds its liveness lock. */
async function ownerElsewhere(url: string, owner: string): Promise<{ close(): Promise<void> }> {
  const conn = postgres(url, { max: 1, onnotice: () => undefined });
  await conn`select pg_advisory_lock(${ownerLockKey(owner).toString()}::int8)`;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await conn.end({ timeout: 1 });
  };
  cleanups.push(close);
  return { close };
}

async function lastSeq(store: Store): Promise<number> {
  const result: unknown = await store.db.execute(sql`select coalesce(max(seq), 0)::int as seq from events`);
  return (result as { seq: number }[])[0]!.seq;
}

describe('run leases', () => {
  it('one process executes a run; another carries control to it, and adopts the run when the owner shuts down', async () => {
    const r = await rig();
    const a = await r.runtime({ leaseMs: 600 });
    const b = await r.runtime({ leaseMs: 600 });
    const id = await r.project({}, ['a'], a);
    const run = await a.runtime.startRun(id);
    await waitFor(a.bus, id, (e) => e.type === 'agent.state_changed' && (e.data as { state: unknown }).state === 'testing');

    // B serves reads; a start sent to it is answered by A, as A answers it.
    expect((await b.runtime.getProject(id)).status).toBe('running');
    expect(b.runtime.host(id)).toBeUndefined();
    await expect(b.runtime.startRun(id)).rejects.toMatchObject({ status: 409, message: 'a run is already running' });

    // A goes away gracefully; B adopts the run from A's snapshot on its next heartbeat.
    await a.runtime.stop();
    const last = (await b.runtime.eventLog(id, 0, 1000)).events.at(-1)!.seq;
    // The restored worker reports its state again when B's lead comes up.
    await waitFor(b.bus, id, (e) => e.seq > last && e.type === 'agent.state_changed' && e.agentId === 'backend-1');
    expect(b.runtime.host(id)?.runId).toBe(run.id);
    await writeFile(r.gate, '');
    const end = await waitFor(b.bus, id, (e) => e.type === 'run.completed');
    expect(end.runId).toBe(run.id);
    expect(r.model.requests).toHaveLength(1);
    expect(await b.runtime.getTask(id, 'a')).toMatchObject({ status: 'completed', attempts: 1 });
  });

  it('pause, resume, task cancel and cancel sent to the process that does not own the run are answered by the owner and take effect', async () => {
    const r = await rig();
    const a = await r.runtime();
    const b = await r.runtime();
    const id = await r.project({ config: { maxConcurrency: 2 } }, ['a1', 'a2'], a);
    const run = await a.runtime.startRun(id);
    await until(async () => (await r.pids()).length === 2, 'both tasks testing');

    const started = Date.now();
    expect(await b.runtime.pauseRun(id)).toMatchObject({ id: run.id, status: 'pausing' });
    const forwardMs = Date.now() - started;
    await waitFor(b.bus, id, (e) => e.type === 'run.pausing' && e.runId === run.id);
    expect(await b.runtime.resumeRun(id)).toMatchObject({ id: run.id, status: 'running' });
    await waitFor(b.bus, id, (e) => e.type === 'run.resumed' && e.runId === run.id);
    expect(await b.runtime.cancelTask(id, 'a1')).toMatchObject({ key: 'a1', status: 'cancelled' });
    await waitFor(b.bus, id, statusTo('a1', 'cancelled'));
    // Refused as the owner refuses it (same status, code and message).
    await expect(b.runtime.cancelTask(id, 'a1')).rejects.toMatchObject({ status: 409, code: 'conflict', message: 'task a1 is cancelled: it cannot be cancelled' });
    expect(await b.runtime.cancelRun(id)).toMatchObject({ id: run.id, status: 'cancelled' });
    await waitFor(b.bus, id, (e) => e.type === 'run.cancelled' && e.runId === run.id);

    expect(b.runtime.host(id)).toBeUndefined();
    expect((await b.runtime.getRun(id, run.id)).status).toBe('cancelled');
    expect(await b.runtime.getTask(id, 'a2')).toMatchObject({ status: 'cancelled' });
    expect(r.model.requests).toHaveLength(2);
    // A NOTIFY round trip, not the poll fallback or the timeout.
    expect(forwardMs).toBeLessThan(2000);
  });

  it('approve, reject and retry sent to the non-owner reach the blocked lead of the owner', async () => {
    const r = await rig();
    const a = await r.runtime();
    const b = await r.runtime();
    await writeFile(r.gate, '');
    const id = await r.project({ config: { review: 'always' } }, ['r1', 'r2'], a);
    const run = await a.runtime.startRun(id);
    await waitFor(a.bus, id, (e) => e.type === 'run.blocked' && e.runId === run.id);

    expect(await b.runtime.reviewTask(id, 'r1', 'approved')).toMatchObject({ key: 'r1', status: 'pending' });
    await waitFor(b.bus, id, statusTo('r1', 'completed'));
    expect(await b.runtime.reviewTask(id, 'r2', 'rejected')).toMatchObject({ key: 'r2', status: 'pending' });
    await waitFor(b.bus, id, (e) => statusTo('r2', 'blocked')(e) && (e.data as { blockedReason?: string }).blockedReason === 'review_rejected');
    const before = await lastSeq(r.store);
    // Answered as the owner answers it: with the row once the owner's lead wrote the retry.
    expect(await b.runtime.retryTask(id, 'r2')).toMatchObject({ key: 'r2', status: 'pending', blockedReason: null, attempts: 0 });
    await waitFor(b.bus, id, (e) => e.seq > before && e.type === 'task.review_requested' && (e.data as { key: string }).key === 'r2');
    await b.runtime.reviewTask(id, 'r2', 'approved');
    const end = await waitFor(b.bus, id, (e) => e.type === 'run.completed');

    expect(end.runId).toBe(run.id);
    expect(b.runtime.host(id)).toBeUndefined();
    expect((await b.runtime.listTasks(id)).map((t) => t.status)).toEqual(['completed', 'completed']);
    expect(r.model.requests).toHaveLength(3);
  });

  it("raising the budget through the non-owner resumes the owner's blocked run", async () => {
    const r = await rig();
    const a = await r.runtime();
    const b = await r.runtime();
    await writeFile(r.gate, '');
    // One default answer costs $0.0096: the first call spends the budget.
    const id = await r.project({ config: { maxConcurrency: 1, budgetUsd: 0.005 } }, ['a', 'b'], a);
    const run = await a.runtime.startRun(id);
    await waitFor(a.bus, id, (e) => e.type === 'run.blocked' && e.runId === run.id);
    expect(r.model.requests).toHaveLength(1);

    const patched = await b.runtime.updateProject(id, { config: { budgetUsd: 1 } });
    expect(patched.config.budgetUsd).toBe(1);
    const done = await waitFor(b.bus, id, (e) => e.type === 'run.completed');
    expect(done.runId).toBe(run.id);
    expect(b.runtime.host(id)).toBeUndefined();
    expect(r.model.requests).toHaveLength(2);
  });

  it('a process whose run was taken over writes nothing more for it and stops its test process', async () => {
    const r = await rig();
    const a = await r.runtime();
    const id = await r.project({}, ['t'], a);
    const run = await a.runtime.startRun(id);
    await waitFor(a.bus, id, (e) => e.type === 'agent.state_changed' && (e.data as { state: unknown }).state === 'testing');
    await until(async () => (await r.pids()).length === 1, 'the test process');
    const [pid] = await r.pids();

    // Another live process takes the run over; A has not noticed yet when its lead writes next.
    const other = `${os.hostname()}:${process.pid}:0ther1`;
    await ownerElsewhere(r.url, other);
    const seq = await lastSeq(r.store);
    await r.store.db.update(runs).set({ owner: other, leaseExpiresAt: sql`now() + interval '1 hour'` }).where(eq(runs.id, run.id));
    a.runtime.host(id)!.send({ type: 'PAUSE' });

    // The batch is refused, the lead stops at once and its test process is killed.
    await until(() => a.runtime.host(id) === undefined, 'the lead to stop');
    await until(() => !isAlive(pid!), 'the test process to be killed');
    await writeFile(r.gate, '');
    await sleep(1500);

    expect((await a.runtime.eventLog(id, seq, 1000)).events).toEqual([]);
    const [row] = await r.store.db.select().from(runs).where(eq(runs.id, run.id));
    expect(row).toMatchObject({ status: 'running', owner: other });
    expect(await a.runtime.getTask(id, 't')).toMatchObject({ status: 'in_progress', attempts: 1 });
    expect(r.model.requests).toHaveLength(1);
    expect(await r.pids()).toHaveLength(1);
  });

  it('a process that cannot renew its lease stops the run before the lease runs out, and writes nothing after', async () => {
    const r = await rig();
    const leaseMs = 3000;
    const a = await r.runtime({ leaseMs });
    const id = await r.project({}, ['t'], a);
    const run = await a.runtime.startRun(id);
    await until(async () => (await r.pids()).length === 1, 'the test process');
    const [pid] = await r.pids();
    // The worker's move to testing is written after the process started (its own batch): wait
    // for it, so that what follows counts only writes made after the lock.
    await until(async () => (await a.runtime.eventLog(id, 0, 1000)).events.some((e) => e.type === 'agent.state_changed' && (e.data as { state: unknown }).state === 'testing'), 'the testing state written');

    // The run row is locked: A's renewals (and writes) hang, as with a database out of reach.
    const blocker = postgres(r.url, { max: 1, onnotice: () => undefined });
    cleanups.push(() => blocker.end({ timeout: 1 }));
    const locked = Date.now();
    const seq = await lastSeq(r.store);
    const released = blocker.begin(async (tx) => {
      await tx`select id from runs where id = ${run.id} for update`;
      await until(() => a.runtime.host(id) === undefined, 'the lead to give the run up', leaseMs * 2);
      const gaveUpMs = Date.now() - locked;
      await until(() => !isAlive(pid!), 'the test process to be killed', leaseMs);
      // Another process takes it over once the lease ran out.
      await tx`update runs set owner = 'someone-else', lease_expires_at = now() + interval '1 hour' where id = ${run.id}`;
      return gaveUpMs;
    });
    const gaveUpMs = await released;
    await writeFile(r.gate, '');
    await sleep(1500);

    expect(gaveUpMs).toBeLessThan(leaseMs);
    expect((await a.runtime.eventLog(id, seq, 1000)).events).toEqual([]);
    expect(await a.runtime.getTask(id, 't')).toMatchObject({ status: 'in_progress' });
    expect(r.model.requests).toHaveLength(1);
  });

  it('an owner with this host name and pid is alive while its lock is held; once its session closes, its run is adopted without waiting for the lease', async () => {
    const r = await rig();
    await writeFile(r.gate, '');
    const b = await r.runtime({ leaseMs: 1500 });
    const id = await r.project({}, ['t'], b);
    // A run of "another container" whose process has our host name and pid.
    const other = `${os.hostname()}:${process.pid}:c0ffee`;
    const elsewhere = await ownerElsewhere(r.url, other);
    const runId = 'run_elsewhere';
    await r.store.db.insert(runs).values({ id: runId, projectId: id, status: 'running', owner: other, leaseExpiresAt: sql`now() + interval '1 hour'` });

    // Past the grace period (3 ticks of 500 ms) and two heartbeats, B still leaves it alone.
    await sleep(2500);
    expect(b.runtime.host(id)).toBeUndefined();
    expect(r.model.requests).toHaveLength(0);
    expect(await r.store.db.select({ owner: runs.owner }).from(runs).where(eq(runs.id, runId))).toEqual([{ owner: other }]);
    expect(b.runtime.leases.graceMs + 2 * b.runtime.leases.tickMs).toBeLessThanOrEqual(2500);
    expect(await b.runtime.leases.isAlive(other)).toBe(true);
    expect((await b.runtime.leases.dead([other])).size).toBe(0);

    const closed = Date.now();
    await elsewhere.close();
    await until(() => b.runtime.host(id) !== undefined, 'B to adopt the run');
    const adoptMs = Date.now() - closed;
    const end = await waitFor(b.bus, id, (e) => e.type === 'run.completed');
    expect(end.runId).toBe(runId);
    // The lease had an hour to go.
    expect(adoptMs).toBeLessThan(b.runtime.leases.graceMs + 3 * b.runtime.leases.tickMs);
  });

  it('an owner whose lock session was cut (a Postgres restart, a proxy) takes its lock back before anyone adopts its run', async () => {
    const r = await rig();
    const a = await r.runtime({ leaseMs: 1500 });
    const b = await r.runtime({ leaseMs: 1500 });
    const id = await r.project({}, ['t'], a);
    const run = await a.runtime.startRun(id);
    await until(async () => (await r.pids()).length === 1, 'the test process');

    const key = ownerLockKey(a.runtime.leases.owner).toString();
    await r.store.db.execute(
      sql`select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and objsubid = 1 and ((classid::int8 << 32) | objid::int8) = ${key}::int8`,
    );
    await until(async () => !(await b.runtime.leases.isAlive(a.runtime.leases.owner)), "A's lock to be gone");
    await until(() => b.runtime.leases.isAlive(a.runtime.leases.owner), 'A to take its lock back');
    // Past the grace period (3 ticks of 500 ms) and two heartbeats: still A's.
    await sleep(2500);
    expect(b.runtime.host(id)).toBeUndefined();
    expect(a.runtime.host(id)?.runId).toBe(run.id);
    expect(await r.pids()).toHaveLength(1);
    await writeFile(r.gate, '');
    expect((await waitFor(a.bus, id, (e) => e.type === 'run.completed')).runId).toBe(run.id);
    expect(r.model.requests).toHaveLength(1);
  });

  it('a delete racing a start never deletes a run whose lead runs', async () => {
    const r = await rig();
    const a = await r.runtime();
    const b = await r.runtime();
    // Widens the window between the delete's "no active run" check and the delete itself.
    await r.store.db.execute(sql.raw(`
      create function slow_delete() returns trigger language plpgsql as $$ begin perform pg_sleep(0.3); return old; end $$;
      create trigger slow_delete before delete on projects for each row execute function slow_delete();`));
    const outcomes: string[] = [];
    for (const order of ['delete first', 'start first', 'delete first', 'start first']) {
      const id = await r.project({}, ['t'], a);
      const del = () => b.runtime.deleteProject(id);
      const start = () => a.runtime.startRun(id);
      const [first, second] = order === 'delete first' ? [del, start] : [start, del];
      const one = first();
      await sleep(60);
      const [x, y] = await Promise.allSettled([one, second()]);
      const [deleted, started] = order === 'delete first' ? [x, y] : [y, x];
      outcomes.push(`${deleted.status}/${started.status}`);
      expect([deleted.status, started.status]).not.toEqual(['fulfilled', 'fulfilled']);
      if (started.status === 'fulfilled') {
        expect(deleted).toMatchObject({ status: 'rejected', reason: { status: 409 } });
        expect(a.runtime.host(id)).toBeDefined();
        await a.runtime.cancelRun(id);
      } else {
        expect(started).toMatchObject({ status: 'rejected', reason: { status: 404 } });
        expect(a.runtime.host(id)).toBeUndefined();
        expect(await r.store.db.select().from(runs).where(eq(runs.projectId, id))).toEqual([]);
      }
    }
    // Which one wins depends on timing; that both never do does not.
    expect(outcomes).toHaveLength(4);
  });

  it("a run whose last write failed is taken up again by this process's heartbeat", async () => {
    const r = await rig();
    const a = await r.runtime({ leaseMs: 900 });
    // While `refuse_end` has a row, the database refuses to end any run.
    await r.store.db.execute(sql.raw(`
      create table refuse_end (x int);
      create function refuse_end() returns trigger language plpgsql as $$ begin
        if new.status in ('completed', 'failed') and exists (select 1 from refuse_end) then raise exception 'injected: cannot end the run'; end if;
        return new; end $$;
      create trigger refuse_end before update on runs for each row execute function refuse_end();
      insert into refuse_end values (1);`));
    const id = await r.project({}, ['t'], a);
    const run = await a.runtime.startRun(id);
    await writeFile(r.gate, '');
    await waitFor(a.bus, id, statusTo('t', 'completed'));
    // The lead ends (its final writes refused) and leaves the run active.
    await until(() => a.runtime.host(id) === undefined, 'the lead to end');
    expect((await a.runtime.getRun(id, run.id)).status).toBe('running');

    await r.store.db.execute(sql`delete from refuse_end`);
    const end = await waitFor(a.bus, id, (e) => e.type === 'run.completed');
    expect(end.runId).toBe(run.id);
    expect((await a.runtime.getProject(id)).status).toBe('completed');
    const [task] = await r.store.db.select().from(tasks).where(eq(tasks.projectId, id));
    expect(task).toMatchObject({ status: 'completed', attempts: 1 });
    expect(r.model.requests).toHaveLength(1);
  });
});
