/**
 * SSE routes through `app.request()`: exact frames, replay from Last-Event-ID / ?since, type
 * filters, live-only global stream, and the inspection stream.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { parseFrames, readSse, startTestApp, type TestApp } from '../support/app.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const ok = (req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok');

async function projectWithTasks(app: TestApp, keys: string[]): Promise<string> {
  const res = await app.json('POST', '/api/projects', { name: 'sse', testCommand: 'node --test' });
  const id = res.body.id as string;
  await app.json('POST', `/api/projects/${id}/tasks`, { tasks: keys.map((key) => ({ key, title: key, description: '' })) });
  return id;
}

describe('project event stream', () => {
  it('sends the head at once, then every event from the first, in exact frames (id, event, data)', async () => {
    t = await startTestApp(ok);
    const id = await projectWithTasks(t, ['a', 'b']);
    const res = await t.request('GET', `/api/projects/${id}/events`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toMatch(/no-cache/);
    const text = await readSse(res, (s) => parseFrames(s).length >= 2);
    expect(text.startsWith(': connected\n\n')).toBe(true);
    const log = (await t.json<{ events: { seq: number; type: string }[] }>('GET', `/api/projects/${id}/events/log`)).body.events;
    const first = log[0]!;
    expect(text).toContain(`id: ${first.seq}\nevent: task.created\ndata: ${JSON.stringify(first)}\n\n`);
    expect(parseFrames(text).map((f) => [Number(f.id), f.event])).toEqual(log.slice(0, 2).map((e) => [e.seq, e.type]));
  });

  it('a reconnect with Last-Event-ID (or ?since=) gets exactly the later events, in order, then live ones; ?types filters', async () => {
    const release = deferred();
    t = await startTestApp(async (req) => {
      await release.promise;
      return ok(req);
    });
    const id = await projectWithTasks(t, ['a', 'b', 'c']);
    const log = async () => (await t!.json<{ events: { seq: number; type: string }[] }>('GET', `/api/projects/${id}/events/log?limit=1000`)).body.events;
    const before = await log();
    const cursor = before[0]!.seq;
    const run = (await t.json<{ run: { id: string } }>('POST', `/api/projects/${id}/start`)).body.run;

    const resumed = await t.request('GET', `/api/projects/${id}/events`, { headers: { 'last-event-id': String(cursor) } });
    const sinced = await t.request('GET', `/api/projects/${id}/events?since=${cursor}`);
    const typed = await t.request('GET', `/api/projects/${id}/events?types=run.started,run.completed`);
    release.resolve();
    await t.runEnd(id, run.id);
    const done = (s: string) => parseFrames(s).some((f) => f.event === 'run.completed');
    const [a, b, c] = await Promise.all([readSse(resumed, done), readSse(sinced, done), readSse(typed, done)]);
    // The log as far as each stream got (the lead's own `completed` state may follow run.completed).
    const all = await log();
    const upTo = (frames: { id?: string }[]) => all.filter((e) => e.seq > cursor && e.seq <= Number(frames.at(-1)!.id)).map((e) => e.seq);
    expect(parseFrames(a).map((f) => Number(f.id))).toEqual(upTo(parseFrames(a)));
    expect(parseFrames(b).map((f) => Number(f.id))).toEqual(upTo(parseFrames(b)));
    expect(parseFrames(c).map((f) => f.event)).toEqual(['run.started', 'run.completed']);
    expect((await t.request('GET', `/api/projects/${id}/events`, { headers: { 'last-event-id': 'abc' } })).status).toBe(400);
    expect((await t.request('GET', `/api/projects/${id}/events?types=bogus`)).status).toBe(400);
    expect((await t.request('GET', '/api/projects/prj_missing/events')).status).toBe(404);
  });

  it('/api/events starts live: events of every project from the moment of connection', async () => {
    t = await startTestApp(ok);
    const old = await projectWithTasks(t, ['x']);
    const res = await t.request('GET', '/api/events');
    // The head is out and the subscription is live once the initial comment arrives.
    const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toBe(': connected\n\n');
    const fresh = await projectWithTasks(t, ['y']);
    let text = '';
    while (!text.includes(fresh)) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    // Other test files share the Postgres database: judge only this test's two projects.
    const projects = parseFrames(text).map((f) => (JSON.parse(f.data) as { projectId: string }).projectId);
    expect(projects).toContain(fresh);
    expect(projects).not.toContain(old);
  });
});

describe('inspection stream', () => {
  it('announces the live lead and workers (@xstate.actor), then their snapshots and events as they move', async () => {
    const release = deferred();
    t = await startTestApp(async (req) => {
      await release.promise;
      return ok(req);
    });
    const id = await projectWithTasks(t, ['a']);
    const run = (await t.json<{ run: { id: string } }>('POST', `/api/projects/${id}/start`)).body.run;
    await t.model.waitForRequest(() => true);
    const res = await t.request('GET', `/api/projects/${id}/inspect`);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const textPromise = readSse(res, (s) => parseFrames(s).some((f) => f.event === '@xstate.snapshot' && JSON.stringify((JSON.parse(f.data) as { snapshot?: { value?: unknown } }).snapshot?.value) === '{"working":"committing"}'));
    release.resolve();
    const frames = parseFrames(await textPromise).map((f) => ({ event: f.event, data: JSON.parse(f.data) as Record<string, unknown> }));
    const actors = frames.filter((f) => f.event === '@xstate.actor').map((f) => f.data);
    expect(actors.map((a) => a.name)).toEqual(expect.arrayContaining(['lead', 'backend-1']));
    expect(actors[0]).toMatchObject({ type: '@xstate.actor', _version: expect.any(String) as string, sessionId: expect.any(String) as string });
    expect(typeof actors[0]!.definition).toBe('string');
    const snapshots = frames.filter((f) => f.event === '@xstate.snapshot');
    expect(snapshots.length).toBeGreaterThan(0);
    expect(frames.some((f) => f.event === '@xstate.event')).toBe(true);
    expect(JSON.stringify(frames)).not.toContain('sk-test-not-a-secret');
    await t.runEnd(id, run.id);
  });
});
