/**
 * Postgres restarted in the middle of a run (`pg_ctlcluster … restart`), under a live service:
 * it reconnects, LISTEN comes back and catches up from the last seq, every write is retried, no
 * event is lost or duplicated, and the run completes. Once while the run is parked on the model,
 * once while the service's writes are inside their transactions: the event append lock is held
 * from another connection, so every write (the run's, and a burst of HTTP writes) waits on it,
 * its rows written but not committed, when Postgres goes down.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';
import { sse } from '../support/service.ts';
import { startRig, until, type Rig } from './support.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

function restartPostgres(): void {
  const version = readdirSync('/etc/postgresql')[0]!;
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart'], { stdio: 'ignore' });
}

describe('Postgres restarted mid-run', () => {
  // One retry: once in several clean runs (2026-12-01) this hung to its timeout with nothing logged
  // (passes alone in ~8 s). Not understood yet: see the issue note; a retry must not hide a
  // deterministic failure, and a second hang still fails.
  it('the run completes and a watching client gets every event exactly once, in order', { retry: 1 }, async () => {
    const held = deferred();
    let holding = true;
    rig = await startRig(async (req) => {
      // The second task's answer waits until the database has been restarted.
      if (req.taskKey === 'b' && holding) await held.promise;
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const one = await rig.start();
    const p = await rig.api(one, 'POST', '/api/projects', { name: 'pg-restart', testCommand: 'node --test' });
    const id = p.body.id as string;
    await rig.api(one, 'POST', `/api/projects/${id}/tasks`, {
      tasks: [
        { key: 'a', title: 'A', description: '' },
        { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
        { key: 'c', title: 'C', description: '', dependsOn: ['b'] },
      ],
    });
    const watcher = await sse(`${one.url}/api/projects/${id}/events`);
    await rig.api(one, 'POST', `/api/projects/${id}/start`);
    await rig.model.waitForRequest((q) => q.taskKey === 'b');

    restartPostgres();
    holding = false;
    held.resolve();

    await watcher.until((m) => m.some((x) => x.event === 'run.completed'));
    watcher.close();
    const log = (await rig.api<{ events: { seq: number }[] }>(one, 'GET', `/api/projects/${id}/events/log?limit=1000`)).body.events;
    const seen = watcher.messages.map((m) => Number(m.id));
    expect(seen).toEqual(log.filter((e) => e.seq <= seen.at(-1)!).map((e) => e.seq));
    expect(new Set(seen).size).toBe(seen.length);
    const tasks = (await rig.api<{ tasks: { status: string }[] }>(one, 'GET', `/api/projects/${id}/tasks`)).body.tasks;
    expect(tasks.map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);
    expect((await rig.api(one, 'GET', '/health')).body).toMatchObject({ status: 'ok', db: 'ok' });
    expect(rig.model.requests).toHaveLength(3);
  });

  it('in the middle of writes: every acknowledged write is kept, no event twice, seqs increasing, the run completes', async () => {
    /** `src/events/log.ts`: taken by every event append, inside the writing transaction, just before its commit. */
    const APPEND_LOCK_KEY = 7_312_002;
    // Under the service's pool (10 connections): every write of the burst gets a connection and waits inside its transaction.
    const BURST = 6;
    const locked = deferred();
    rig = await startRig(async (req) => {
      // The second task's answer goes out only once the append lock is held elsewhere: recording
      // it (the answer and its llm.usage event, one transaction) then waits on the lock.
      if (req.taskKey === 'b') await locked.promise;
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const r = rig;
    const one = await r.start();
    const run = (await r.api(one, 'POST', '/api/projects', { name: 'pg-restart-write', testCommand: 'node --test' })).body.id as string;
    await r.api(one, 'POST', `/api/projects/${run}/tasks`, {
      tasks: [
        { key: 'a', title: 'A', description: '' },
        { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
        { key: 'c', title: 'C', description: '', dependsOn: ['b'] },
      ],
    });
    const other = (await r.api(one, 'POST', '/api/projects', { name: 'pg-restart-burst', testCommand: 'node --test' })).body.id as string;
    const watcher = await sse(`${one.url}/api/projects/${run}/events`);
    await r.api(one, 'POST', `/api/projects/${run}/start`);
    await r.model.waitForRequest((q) => q.taskKey === 'b');

    const holder = postgres(r.databaseUrl!, { max: 1, onnotice: () => undefined });
    await holder`select pg_advisory_lock(${APPEND_LOCK_KEY})`;
    const waiting = async () =>
      Number((await holder`select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${APPEND_LOCK_KEY} and not granted`)[0]!.n);
    locked.resolve();
    // A burst of HTTP writes, each a transaction that adds a task and its task.created event.
    const add = (n: number) =>
      r
        .api(one, 'POST', `/api/projects/${other}/tasks`, { tasks: [{ key: `w${n}`, title: `W${n}`, description: '' }] })
        .catch((e: unknown) => ({ status: 0, body: { error: { code: String(e) } } }));
    const burst = Array.from({ length: BURST }, (_, n) => add(n));
    await until(async () => (await waiting()) >= BURST + 1, 'the burst and the run to wait on the append lock inside their transactions');

    restartPostgres();
    await holder.end({ timeout: 0 }).catch(() => undefined);
    // A second burst while the service is finding Postgres again.
    for (let n = BURST; n < 2 * BURST; n++) burst.push(add(n));

    const answers = await Promise.all(burst);
    const acknowledged = answers.flatMap((a, n) => (a.status === 201 ? [`w${n}`] : []));
    console.log(`restart mid-write: ${acknowledged.length}/${answers.length} burst writes acknowledged, statuses ${answers.map((a) => a.status).join(' ')}`);
    // A write the restart cut off is a 503 the client may repeat, never a 500.
    for (const a of answers) if (a.status !== 201) expect(a).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });

    await watcher.until((m) => m.some((x) => x.event === 'run.completed'));
    watcher.close();
    const log = (await r.api<{ events: { seq: number; type: string; taskId?: string }[] }>(one, 'GET', `/api/projects/${run}/events/log?limit=1000`)).body.events;
    const seqs = log.map((e) => e.seq);
    for (let n = 1; n < seqs.length; n++) expect(seqs[n]!).toBeGreaterThan(seqs[n - 1]!);
    const seen = watcher.messages.map((m) => Number(m.id));
    expect(seen).toEqual(seqs.filter((s) => s <= seen.at(-1)!));
    const tasks = (await r.api<{ tasks: { id: string; key: string; status: string }[] }>(one, 'GET', `/api/projects/${run}/tasks`)).body.tasks;
    expect(tasks.map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);
    // The answer whose recording was cut off is recorded once, and not asked for again.
    expect(r.model.requests.filter((q) => q.taskKey === 'b')).toHaveLength(1);
    const b = tasks.find((t) => t.key === 'b')!.id;
    expect(log.filter((e) => e.type === 'llm.usage' && e.taskId === b)).toHaveLength(1);
    expect(log.filter((e) => e.type === 'run.completed')).toHaveLength(1);

    // Every acknowledged write is there, and each task it added was announced exactly once.
    const otherLog = (await r.api<{ events: { seq: number; type: string; data: { key?: string } }[] }>(one, 'GET', `/api/projects/${other}/events/log?limit=1000`)).body.events;
    const otherTasks = (await r.api<{ tasks: { key: string }[] }>(one, 'GET', `/api/projects/${other}/tasks`)).body.tasks.map((t) => t.key);
    for (const key of acknowledged) expect(otherTasks).toContain(key);
    const created = otherLog.filter((e) => e.type === 'task.created').map((e) => e.data.key!);
    expect([...created].sort()).toEqual([...otherTasks].sort());
    expect((await r.api(one, 'GET', '/health')).body).toMatchObject({ status: 'ok', db: 'ok' });
  });
});
