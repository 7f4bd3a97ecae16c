/**
 * Every route of contract §2 and every error status, through `app.request()` over a real
 * runtime (database, SDK against the scripted model, git, test processes).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { dbKind } from '../support/db.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const ok = (req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok');
type Json = Record<string, unknown>;
const errorOf = (body: unknown) => (body as { error: { code: string; message: string; details?: { path: string; message: string }[] } }).error;

async function project(app: TestApp, body: Json = {}): Promise<Json> {
  const res = await app.json('POST', '/api/projects', { name: 'demo', testCommand: 'node --test', ...body });
  expect(res.status).toBe(201);
  return res.body;
}

describe('health and fallbacks', () => {
  it('GET /health answers without auth; unknown routes are 404 with the envelope', async () => {
    t = await startTestApp(ok, { apiToken: 'sekret' });
    expect((await t.json('GET', '/health')).body).toEqual({ status: 'ok', db: 'ok', version: '0.1.0' });
    const missing = await t.json('GET', '/api/nope', undefined, { authorization: 'Bearer sekret' });
    expect(missing.status).toBe(404);
    expect(errorOf(missing.body).code).toBe('not_found');
    // The dashboard, the document and the reference page need no token to load (the page asks
    // for it; the document holds no data): see test/browser and test/http/openapi.test.ts.
    for (const route of ['/openapi.json', '/docs']) expect((await t.request('GET', route)).status, route).toBe(200);
    const res = await t.request('GET', '/health');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });
});

describe('faults', () => {
  it('a database that goes away: /health says so (503), other routes answer with the envelope and nothing more (503 to retry when the connection is gone)', async () => {
    t = await startTestApp(ok);
    await project(t);
    await t.runtime.stop();
    await t.store.close();
    const health = await t.json('GET', '/health');
    expect(health.status).toBe(503);
    expect(health.body).toEqual({ status: 'error', db: 'error', version: '0.1.0' });
    const res = await t.json('GET', '/api/projects');
    if (dbKind() === 'postgres') {
      // The pool's connections are gone: a transient condition to a client, told to try again.
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(res.body).toEqual({ error: { code: 'unavailable', message: 'the database is briefly unavailable: try again shortly' } });
    } else {
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: { code: 'internal', message: 'internal error' } });
    }
  });
});

describe('auth', () => {
  it('with TROUPE_API_TOKEN every /api route needs the bearer token; SSE routes also take ?access_token=', async () => {
    t = await startTestApp(ok, { apiToken: 'sekret' });
    const none = await t.json('GET', '/api/projects');
    expect(none.status).toBe(401);
    expect(errorOf(none.body)).toEqual({ code: 'unauthorized', message: 'missing bearer token' });
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await t.json('GET', '/api/projects', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await t.json('GET', '/api/projects', undefined, { authorization: 'Bearer sekret' })).status).toBe(200);
    // A query token is for EventSource only: not accepted on other routes.
    expect((await t.json('GET', '/api/projects?access_token=sekret')).status).toBe(401);
    const stream = await t.request('GET', '/api/events?access_token=sekret');
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await stream.body!.cancel();
    expect((await t.request('GET', '/api/events?access_token=nope')).status).toBe(401);
  });
});

describe('projects', () => {
  it('creates (201, defaults filled), lists, gets, patches and deletes', async () => {
    t = await startTestApp(ok);
    const p = await project(t, { config: { maxConcurrency: 2 } });
    expect(p).toMatchObject({
      name: 'demo',
      testCommand: ['node', '--test'],
      goal: null,
      status: 'idle',
      progress: { total: 0, pending: 0, inProgress: 0, completed: 0, failed: 0, blocked: 0, cancelled: 0, percent: 0 },
      usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0 },
      config: { maxConcurrency: 2, maxAgents: 6, maxCorrectionAttempts: 3, budgetUsd: null, testTimeoutMs: 300000, isolation: 'worktree' },
    });
    expect(Object.keys(p).sort()).toEqual(['config', 'createdAt', 'goal', 'id', 'name', 'progress', 'status', 'testCommand', 'usage', 'workspace'].sort());
    expect(p.workspace).toMatch(/^\//);
    const listed = (await t.json<{ projects: Json[] }>('GET', '/api/projects')).body.projects;
    expect(listed.filter((x) => x.id === p.id)).toEqual([p]);
    expect((await t.json('GET', `/api/projects/${p.id as string}`)).body).toEqual(p);
    const patched = await t.json('PATCH', `/api/projects/${p.id as string}`, { name: 'renamed', config: { budgetUsd: 5 } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'renamed', config: { budgetUsd: 5, maxConcurrency: 2 } });
    const del = await t.request('DELETE', `/api/projects/${p.id as string}`);
    expect(del.status).toBe(204);
    expect((await t.json('GET', `/api/projects/${p.id as string}`)).status).toBe(404);
    expect((await t.json('DELETE', `/api/projects/${p.id as string}`)).status).toBe(404);
  });

  it('400 names the offending fields: unknown fields, bad values, shell operators, malformed bodies; 415 for non-JSON ones', async () => {
    t = await startTestApp(ok);
    const bad = await t.json('POST', '/api/projects', { name: '', testCommand: 'npm test && rm -rf /', colour: 'red', config: { maxConcurrency: 0 } });
    expect(bad.status).toBe(400);
    const error = errorOf(bad.body);
    expect(error.code).toBe('validation_failed');
    const paths = error.details!.map((d) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'testCommand', 'config.maxConcurrency', 'colour']));
    expect(error.details!.find((d) => d.path === 'colour')?.message).toBe('unknown field');
    const nested = await t.json('POST', '/api/projects', { name: 'x', testCommand: 'x', config: { extra: 1 } });
    expect(errorOf(nested.body).details).toEqual([{ path: 'config.extra', message: 'unknown field' }]);
    expect(JSON.stringify(error.details)).toContain('shell operator');
    const malformed = await t.request('POST', '/api/projects', { body: '{"name":', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);
    expect(errorOf(await malformed.json())).toEqual({ code: 'validation_failed', message: 'Malformed JSON in request body', details: [{ path: '(body)', message: 'not valid JSON' }] });
    const text = await t.request('POST', '/api/projects', { body: 'name=x', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect(errorOf(await text.json())).toMatchObject({ code: 'unsupported_media_type', message: expect.stringMatching(/JSON/) as unknown });
    const p = await project(t);
    expect((await t.json('PATCH', `/api/projects/${p.id as string}`, {})).status).toBe(400);
    expect((await t.json('PATCH', `/api/projects/${p.id as string}`, { goal: 'x' })).status).toBe(400);
    expect((await t.json('PATCH', '/api/projects/prj_missing', { name: 'x' })).status).toBe(404);
  });

  it('413 for a body over the limit', async () => {
    t = await startTestApp(ok, { bodyLimitBytes: 1024 });
    const res = await t.json('POST', '/api/projects', { name: 'x', testCommand: 'node --test', goal: 'g'.repeat(5000) });
    expect(res.status).toBe(413);
    expect(errorOf(res.body).code).toBe('payload_too_large');
  });
});

describe('tasks', () => {
  it('adds tasks atomically (201), 422 on a cycle with its path or an unknown dependency, 404 on a missing project', async () => {
    t = await startTestApp(ok);
    const p = await project(t);
    const base = `/api/projects/${p.id as string}`;
    const created = await t.json<{ tasks: Json[] }>('POST', `${base}/tasks`, {
      tasks: [
        { key: 'a', title: 'Server module', description: 'x' },
        { key: 'b', title: 'Login page', description: 'x', dependsOn: ['a'], priority: 1 },
      ],
    });
    expect(created.status).toBe(201);
    expect(created.body.tasks.map((x) => [x.key, x.agentType, x.dependsOn, x.status])).toEqual([
      ['a', 'backend', [], 'pending'],
      ['b', 'frontend', ['a'], 'pending'],
    ]);
    const cycle = await t.json('POST', `${base}/tasks`, {
      tasks: [
        { key: 'c', title: 'C', description: '', dependsOn: ['d'] },
        { key: 'd', title: 'D', description: '', dependsOn: ['c'] },
      ],
    });
    expect(cycle.status).toBe(422);
    expect(errorOf(cycle.body).message).toMatch(/^dependency cycle: (c → d → c|d → c → d)$/);
    const unknown = await t.json('POST', `${base}/tasks`, { tasks: [{ key: 'e', title: 'E', description: '', dependsOn: ['ghost'] }] });
    expect(unknown.status).toBe(422);
    const badKey = await t.json('POST', `${base}/tasks`, { tasks: [{ key: 'bad key', title: 'E', description: '' }] });
    expect(badKey.status).toBe(400);
    expect(errorOf(badKey.body).details![0]!.path).toBe('tasks.0.key');
    expect((await t.json('POST', '/api/projects/prj_missing/tasks', { tasks: [{ key: 'x', title: 'x', description: '' }] })).status).toBe(404);
    const list = await t.json<{ tasks: Json[] }>('GET', `${base}/tasks`);
    expect(list.body.tasks.map((x) => x.key)).toEqual(['a', 'b']);
    const byKey = await t.json('GET', `${base}/tasks/b`);
    const byId = await t.json('GET', `${base}/tasks/${byKey.body.id as string}`);
    expect(byId.body).toEqual(byKey.body);
    expect(byKey.body).toMatchObject({ testResults: [], corrections: [], usage: { inputTokens: 0 } });
    expect((await t.json('GET', `${base}/tasks/zzz`)).status).toBe(404);
  });

  it('retry (202) re-queues only failed/blocked/cancelled tasks (409 otherwise); cancel (202) only pending/in-progress ones', async () => {
    t = await startTestApp(ok);
    const p = await project(t);
    const base = `/api/projects/${p.id as string}`;
    await t.json('POST', `${base}/tasks`, { tasks: [{ key: 'a', title: 'A', description: '' }, { key: 'b', title: 'B', description: '', dependsOn: ['a'] }] });
    expect((await t.json('POST', `${base}/tasks/a/retry`, {})).status).toBe(409);
    const cancelled = await t.json('POST', `${base}/tasks/a/cancel`);
    expect(cancelled.status).toBe(202);
    expect(cancelled.body).toMatchObject({ key: 'a', status: 'cancelled' });
    expect((await t.json('POST', `${base}/tasks/a/cancel`)).status).toBe(409);
    expect((await t.json('POST', `${base}/tasks/a/retry`, { guidance: 42 })).status).toBe(400);
    expect((await t.json('POST', `${base}/tasks/a/retry`, { guidance: 'again', extra: 1 })).status).toBe(400);
    const retried = await t.request('POST', `${base}/tasks/a/retry`);
    expect(retried.status).toBe(202);
    expect(await retried.json()).toMatchObject({ key: 'a', status: 'pending' });
    expect((await t.json('POST', `${base}/tasks/zzz/retry`, {})).status).toBe(404);
  });
});

describe('runs and control', () => {
  it('start 202, a second start 409, pause/resume/cancel 202 or 409 by state, runs newest first', async () => {
    const release = deferred();
    t = await startTestApp(async (req) => {
      await release.promise;
      return ok(req);
    });
    const p = await project(t);
    const base = `/api/projects/${p.id as string}`;
    expect((await t.json('POST', `${base}/start`)).status).toBe(422);
    await t.json('POST', `${base}/tasks`, { tasks: [{ key: 'a', title: 'A', description: '' }] });
    const started = await t.json<{ run: Json }>('POST', `${base}/start`);
    expect(started.status).toBe(202);
    expect(started.body.run).toMatchObject({ projectId: p.id, status: 'running', endedAt: null, summary: null });
    expect((await t.json('POST', `${base}/start`)).status).toBe(409);
    expect((await t.json('POST', `${base}/resume`)).status).toBe(409);
    await t.model.waitForRequest(() => true);
    expect((await t.json<{ run: Json }>('POST', `${base}/pause`)).body.run.status).toBe('pausing');
    expect((await t.json('POST', `${base}/pause`)).status).toBe(409);
    expect((await t.json<{ run: Json }>('POST', `${base}/resume`)).body.run.status).toBe('running');
    expect((await t.json('DELETE', base)).status).toBe(409);
    expect((await t.json<{ run: Json }>('POST', `${base}/cancel`)).body.run.status).toBe('cancelled');
    release.resolve();
    const runId = started.body.run.id as string;
    await t.runEnd(p.id as string, runId);
    expect((await t.json('POST', `${base}/cancel`)).status).toBe(409);
    expect((await t.json<{ runs: Json[] }>('GET', `${base}/runs`)).body.runs.map((r) => r.status)).toEqual(['cancelled']);
    expect((await t.json<{ run: Json }>('GET', `${base}/runs/${runId}`)).body.run).toMatchObject({ id: runId, status: 'cancelled' });
    expect((await t.json('GET', `${base}/runs/run_missing`)).status).toBe(404);
    expect((await t.json('POST', '/api/projects/prj_missing/start')).status).toBe(404);
  });

  it('actors, usage and the event log after a completed run', async () => {
    t = await startTestApp(ok);
    const p = await project(t);
    const base = `/api/projects/${p.id as string}`;
    await t.json('POST', `${base}/tasks`, { tasks: [{ key: 'a', title: 'Server module', description: '' }] });
    const run = (await t.json<{ run: Json }>('POST', `${base}/start`)).body.run;
    await t.runEnd(p.id as string, run.id as string);
    await t.runtime.host(p.id as string)?.ended;

    const actors = (await t.json<{ actors: Json[] }>('GET', `${base}/actors`)).body.actors;
    expect(actors.map((a) => a.id)).toEqual(['backend-1', 'lead']);
    expect(actors[1]).toMatchObject({ kind: 'lead', machine: 'lead', machineVersion: 3, state: 'completed', status: 'done' });
    expect(Object.keys(actors[0]!).sort()).toEqual(['agentType', 'id', 'kind', 'machine', 'machineVersion', 'state', 'status', 'updatedAt'].sort());
    const lead = await t.json('GET', `${base}/actors/lead`);
    expect(lead.body).toMatchObject({ id: 'lead', snapshot: { value: 'completed' } });
    expect((await t.json('GET', `${base}/actors/ghost`)).status).toBe(404);

    const usage = (await t.json<Json>('GET', `${base}/usage`)).body;
    expect(usage).toMatchObject({
      totals: { inputTokens: 1200, outputTokens: 400, costUsd: 0.0096 },
      byModel: [{ model: 'claude-sonnet-4-6', inputTokens: 1200 }],
      byAgent: [{ agentId: 'backend-1' }],
      byTask: [{ key: 'a', inputTokens: 1200 }],
    });

    const page = (await t.json<{ events: { seq: number; type: string }[]; next: number }>('GET', `${base}/events/log?limit=3`)).body;
    expect(page.events).toHaveLength(3);
    expect(page.events[0]!.type).toBe('task.created');
    expect(page.next).toBe(page.events[2]!.seq);
    const rest = (await t.json<{ events: { seq: number }[]; next: number }>('GET', `${base}/events/log?since=${page.next}&limit=1000`)).body;
    expect(rest.events[0]!.seq).toBeGreaterThan(page.next);
    const all = (await t.json<{ events: { seq: number }[] }>('GET', `${base}/events/log?limit=1000`)).body.events;
    expect([...page.events, ...rest.events].map((e) => e.seq)).toEqual(all.map((e) => e.seq));
    const only = (await t.json<{ events: { type: string }[] }>('GET', `${base}/events/log?types=run.started,run.completed`)).body.events;
    expect(only.map((e) => e.type)).toEqual(['run.started', 'run.completed']);
    expect((await t.json('GET', `${base}/events/log?types=nope`)).status).toBe(400);
    expect((await t.json('GET', `${base}/events/log?limit=5000`)).status).toBe(400);
    expect((await t.json('GET', `${base}/events/log?since=-1`)).status).toBe(400);
  });
});

describe('machines', () => {
  it('lists the machines, serves toJSON() and a mermaid stateDiagram-v2', async () => {
    t = await startTestApp(ok);
    expect((await t.json('GET', '/api/machines')).body).toEqual([
      { name: 'lead', version: 3 },
      { name: 'worker', version: 3 },
    ]);
    const worker = (await t.json<Json>('GET', '/api/machines/worker')).body;
    expect(worker).toMatchObject({ id: 'worker', initial: expect.anything() as unknown });
    // The working states share one parent (`working`) with their CANCEL and fault transitions.
    const states = worker.states as Record<string, Json>;
    expect(Object.keys(states)).toEqual(expect.arrayContaining(['idle', 'releasing', 'working']));
    expect(Object.keys(states.working!.states as Json)).toEqual(expect.arrayContaining(['generating', 'applying', 'testing', 'correcting']));
    const mermaid = await t.request('GET', '/api/machines/lead?format=mermaid');
    expect(mermaid.headers.get('content-type')).toMatch(/^text\/plain/);
    expect((await mermaid.text()).split('\n')[0]).toBe('stateDiagram-v2');
    expect((await t.json('GET', '/api/machines/nope')).status).toBe(404);
    expect((await t.json('GET', '/api/machines/lead?format=png')).status).toBe(400);
  });
});
