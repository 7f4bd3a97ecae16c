/**
 * Retry, cancel, approve and reject answer with the task as the request left it — the row read
 * once the lead's write of the change committed, not the row from before nor a status made up
 * for the answer — and the actor views name the task a worker is on by its key too. Through the
 * HTTP API over a real runtime (database, SDK against the scripted model, git, `node --test`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MessagesRequest, Reply } from '../../src/scripted-model/server.ts';
import type { TroupeEvent } from '../../src/events/types.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest, writeFiles } from '../support/replies.ts';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

type Json = Record<string, unknown>;
type Task = { key: string; status: string; blockedReason: string | null; attempts: number; guidance: string | null; agentId: string | null; review: { decision?: string } | null };

async function project(app: TestApp, config: Json = {}): Promise<string> {
  const res = await app.json<{ id: string }>('POST', '/api/projects', { name: 'answers', testCommand: 'node --test', config: { sandbox: { mode: 'none' }, ...config } });
  expect(res.status).toBe(201);
  return res.body.id;
}

const changesOf = (events: TroupeEvent[], key: string) =>
  events.filter((e) => e.type === 'task.status_changed' && (e.data as { key: string }).key === key).map((e) => (e.data as { to: string }).to);

const isStatus = (key: string, to: string) => (e: TroupeEvent) => e.type === 'task.status_changed' && (e.data as { key: string; to: string }).key === key && (e.data as { to: string }).to === to;

describe('control requests answer the task as the request left it', () => {
  it('retry of a blocked task answers pending with the new guidance and attempts, as the row says right after', async () => {
    const holdB = deferred();
    let aCalls = 0;
    t = await startTestApp(async (req: MessagesRequest): Promise<Reply> => {
      if (req.taskKey === 'b') {
        await holdB.promise;
        return moduleWithTest('b', 'ok');
      }
      aCalls += 1;
      // The first answer fails its own test: with no correction attempts the task ends blocked.
      return aCalls === 1 ? moduleWithTest('a', 'ok', 'not ok') : moduleWithTest('a', 'ok');
    });
    const id = await project(t, { maxConcurrency: 1, maxCorrectionAttempts: 0 });
    const base = `/api/projects/${id}`;
    await t.json('POST', `${base}/tasks`, {
      tasks: [
        { key: 'a', title: 'A', description: 'backend module a', priority: 0 },
        { key: 'b', title: 'B', description: 'backend module b', priority: 1 },
      ],
    });
    const blocked = t.waitForEvent(id, isStatus('a', 'blocked'));
    const run = await t.json<{ run: { id: string } }>('POST', `${base}/start`);
    expect(run.status).toBe(202);
    await blocked;
    // b holds the only slot: nothing can take a again before we look at it.
    await t.model.waitForRequest((r) => r.taskKey === 'b');
    const before = (await t.json<Task>('GET', `${base}/tasks/a`)).body;
    expect(before).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted', attempts: 1, guidance: null });

    const retried = await t.json<Task>('POST', `${base}/tasks/a/retry`, { guidance: 'Return the value the test expects.' });
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ key: 'a', status: 'pending', blockedReason: null, attempts: 0, guidance: 'Return the value the test expects.', agentId: null });
    const { testResults: _r, corrections: _c, usage: _u, baseline: _b, ...row } = (await t.json<Json>('GET', `${base}/tasks/a`)).body;
    expect(row).toEqual(retried.body);
    expect(changesOf(await t.events(id), 'a')).toEqual(['in_progress', 'blocked', 'pending']);

    const end = t.runEnd(id, run.body.run.id);
    holdB.resolve();
    expect((await end).type).toBe('run.completed');
  });

  it('retry in a blocked run answers pending once the run has resumed', async () => {
    let calls = 0;
    t = await startTestApp(async () => (++calls === 1 ? moduleWithTest('a', 'ok', 'not ok') : moduleWithTest('a', 'ok')));
    const id = await project(t, { maxCorrectionAttempts: 0 });
    const base = `/api/projects/${id}`;
    await t.json('POST', `${base}/tasks`, { tasks: [{ key: 'a', title: 'A', description: 'backend module a' }] });
    const run = (await t.json<{ run: { id: string } }>('POST', `${base}/start`)).body.run;
    expect((await t.runEnd(id, run.id)).type).toBe('run.blocked');

    const retried = await t.json<Task>('POST', `${base}/tasks/a/retry`, { guidance: 'again' });
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ status: 'pending', attempts: 0, guidance: 'again' });
    // What the answer shows is written, and so is the run's resumption.
    const events = await t.events(id);
    expect(changesOf(events, 'a').slice(0, 3)).toEqual(['in_progress', 'blocked', 'pending']);
    expect(events.some((e) => e.type === 'run.resumed')).toBe(true);
    expect((await t.json<{ run: { status: string } }>('GET', `${base}/runs/${run.id}`)).body.run.status).not.toBe('blocked');
    expect((await t.waitForEvent(id, (e) => e.type === 'run.completed')).runId).toBe(run.id);
  });

  it('cancel of an in-flight task answers cancelled from the written row; its dependent is blocked already', async () => {
    const hold = deferred();
    t = await startTestApp(async (req) => {
      await hold.promise;
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const id = await project(t);
    const base = `/api/projects/${id}`;
    await t.json('POST', `${base}/tasks`, {
      tasks: [
        { key: 'a', title: 'A', description: 'backend module a' },
        { key: 'b', title: 'B', description: 'backend module b', dependsOn: ['a'] },
      ],
    });
    const run = (await t.json<{ run: { id: string } }>('POST', `${base}/start`)).body.run;
    await t.model.waitForRequest((r) => r.taskKey === 'a');

    const cancelled = await t.json<Task>('POST', `${base}/tasks/a/cancel`);
    expect(cancelled.status).toBe(202);
    expect(cancelled.body).toMatchObject({ key: 'a', status: 'cancelled' });
    // Read right after: the same row, the change in the log, the dependent given up with it.
    const { testResults: _r, corrections: _c, usage: _u, baseline: _b, ...row } = (await t.json<Json>('GET', `${base}/tasks/a`)).body;
    expect(row).toEqual(cancelled.body);
    const events = await t.events(id);
    expect(changesOf(events, 'a')).toEqual(['in_progress', 'cancelled']);
    expect((await t.json<Task>('GET', `${base}/tasks/b`)).body).toMatchObject({ status: 'blocked', blockedReason: 'dependency_failed' });

    hold.resolve();
    expect((await t.runEnd(id, run.id)).type).toBe('run.blocked');
    expect((await t.json<Task>('GET', `${base}/tasks/a`)).body.status).toBe('cancelled');
  });

  it('approve while the run is active answers the row after: the approved task already taken by a worker to land', async () => {
    const holdOther = deferred();
    const cheating = JSON.stringify({ name: 'calc', scripts: { test: 'exit 0' } });
    t = await startTestApp(async (req) => {
      if (req.taskKey === 'other') {
        await holdOther.promise;
        return moduleWithTest('other', 'ok');
      }
      // Touches a protected file: tests pass, the change waits for review.
      return writeFiles({ 'lib/calc.js': 'exports.answer = () => 42;\n', 'package.json': cheating });
    });
    const id = await project(t, { maxConcurrency: 2 });
    const base = `/api/projects/${id}`;
    await t.json('POST', `${base}/tasks`, {
      tasks: [
        { key: 'calc', title: 'Calc', description: 'backend lib/calc.js', priority: 0 },
        { key: 'other', title: 'Other', description: 'backend module other', priority: 1 },
      ],
    });
    const review = t.waitForEvent(id, (e) => e.type === 'task.review_requested');
    const run = (await t.json<{ run: { id: string } }>('POST', `${base}/start`)).body.run;
    await review;
    await t.model.waitForRequest((r) => r.taskKey === 'other');
    expect((await t.json<Task>('GET', `${base}/tasks/calc`)).body.status).toBe('review');

    const approved = await t.json<Task>('POST', `${base}/tasks/calc/approve`);
    expect(approved.status).toBe(202);
    // A worker was free: the decision and the assignment were written together.
    expect(approved.body).toMatchObject({ key: 'calc', status: 'in_progress', review: { decision: 'approved' } });
    expect(approved.body.agentId).toMatch(/^backend-\d+$/);
    const events = await t.events(id);
    expect(changesOf(events, 'calc')).toEqual(['in_progress', 'review', 'pending', 'in_progress']);
    expect(events.filter((e) => e.type === 'task.reviewed').map((e) => e.data)).toEqual([{ key: 'calc', decision: 'approved' }]);

    holdOther.resolve();
    expect((await t.runEnd(id, run.id)).type).toBe('run.completed');
  });

  it('reject in a blocked run answers the written row: re-queued with the guidance, the decision recorded', async () => {
    const cheating = JSON.stringify({ name: 'calc', scripts: { test: 'exit 0' } });
    t = await startTestApp(async (req) =>
      req.attempt === 1 ? writeFiles({ 'lib/calc.js': 'exports.answer = () => 42;\n', 'package.json': cheating }) : moduleWithTest('calc', 'ok'),
    );
    const id = await project(t);
    const base = `/api/projects/${id}`;
    await t.json('POST', `${base}/tasks`, { tasks: [{ key: 'calc', title: 'Calc', description: 'backend lib/calc.js' }] });
    const run = (await t.json<{ run: { id: string } }>('POST', `${base}/start`)).body.run;
    expect((await t.runEnd(id, run.id)).type).toBe('run.blocked');

    const rejected = await t.json<Task>('POST', `${base}/tasks/calc/reject`, { guidance: 'Leave package.json alone.' });
    expect(rejected.status).toBe(202);
    expect(rejected.body).toMatchObject({ guidance: 'Leave package.json alone.', review: { decision: 'rejected' } });
    // Re-queued; when the resumed run's free worker took it in the same write, already assigned.
    if (rejected.body.status === 'in_progress') expect(rejected.body.agentId).toMatch(/^backend-\d+$/);
    else expect(rejected.body).toMatchObject({ status: 'pending', agentId: null });
    const events = await t.events(id);
    expect(events.filter((e) => e.type === 'task.reviewed').map((e) => e.data)).toEqual([{ key: 'calc', decision: 'rejected', guidance: 'Leave package.json alone.' }]);
    expect(changesOf(events, 'calc').slice(0, 3)).toEqual(['in_progress', 'review', 'pending']);
    expect((await t.waitForEvent(id, (e) => e.type === 'run.completed')).runId).toBe(run.id);
  });
});

describe('actor views', () => {
  it('a worker on a task carries its key next to its id, in the list and alone', async () => {
    const hold = deferred();
    t = await startTestApp(async (req) => {
      await hold.promise;
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const id = await project(t);
    const base = `/api/projects/${id}`;
    const created = await t.json<{ tasks: { id: string; key: string }[] }>('POST', `${base}/tasks`, { tasks: [{ key: 'server.api', title: 'Server', description: 'backend api' }] });
    const task = created.body.tasks[0]!;
    const run = (await t.json<{ run: { id: string } }>('POST', `${base}/start`)).body.run;
    await t.model.waitForRequest((r) => r.taskKey === 'server.api');
    // The worker's row is written with its state change (same transaction).
    await t.waitForEvent(id, (e) => e.type === 'agent.state_changed' && e.agentId === 'backend-1' && (e.data as { state: unknown }).state !== 'idle');

    const actors = (await t.json<{ actors: Json[] }>('GET', `${base}/actors`)).body.actors;
    const worker = actors.find((a) => a.id === 'backend-1');
    expect(worker).toMatchObject({ kind: 'worker', taskId: task.id, taskKey: 'server.api' });
    expect(actors.find((a) => a.id === 'lead')).not.toHaveProperty('taskKey');
    const one = (await t.json<Json>('GET', `${base}/actors/backend-1`)).body;
    expect(one).toMatchObject({ id: 'backend-1', taskId: task.id, taskKey: 'server.api' });

    hold.resolve();
    expect((await t.runEnd(id, run.id)).type).toBe('run.completed');
    await t.runtime.host(id)?.ended;
    // Done with its task: neither id nor key.
    const after = (await t.json<{ actors: Json[] }>('GET', `${base}/actors`)).body.actors.find((a) => a.id === 'backend-1');
    expect(after).not.toHaveProperty('taskId');
    expect(after).not.toHaveProperty('taskKey');
  });
});
