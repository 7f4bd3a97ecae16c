/**
 * Local exposure (CONTRACT §2 "Exposure"), through `app.request()`: foreign Host (DNS rebinding),
 * foreign Origin (cross-site simple requests), non-JSON bodies, NUL anywhere in the input, and the
 * cap on open event streams. Every refusal is checked for its effect too: nothing was created.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { moduleWithTest } from '../support/replies.ts';

const ok = (req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok');

// One app without a token for most tests (starting one takes seconds); `t` for tests that need other options.
let local: TestApp;
let t: TestApp | undefined;
beforeAll(async () => {
  local = await startTestApp(ok);
});
afterAll(async () => {
  await local.close();
});
afterEach(async () => {
  await t?.close();
  t = undefined;
});

// A name of this file's own: on Postgres every test file shares one database, so "nothing
// created" counts only the projects these tests could have made.
const NAME = `exposure-${process.pid}-${Date.now()}`;
const create = { name: NAME, testCommand: 'node --test' };
type ErrorJson = { error: { code: string; message: string; details?: { path: string; message: string }[] } };
const errorOf = (body: unknown) => (body as ErrorJson).error;

async function projectCount(app: TestApp): Promise<number> {
  const res = await app.json<{ projects: { name: string }[] }>('GET', '/api/projects');
  expect(res.status).toBe(200);
  return res.body.projects.filter((p) => p.name === NAME).length;
}

async function projectWithTask(app: TestApp): Promise<string> {
  const p = await app.json('POST', '/api/projects', create);
  expect(p.status).toBe(201);
  const id = p.body.id as string;
  expect((await app.json('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'a', title: 'Server code', description: '' }] })).status).toBe(201);
  return id;
}

describe('Host (DNS rebinding), without a token', () => {
  it('a Host that is not a loopback name → 403 forbidden_host on every route (/health too), and nothing is created', async () => {
    const before = await projectCount(local);
    for (const host of ['evil.example', 'attacker.com:3000', '127.0.0.1.nip.io:3000', 'localhost.evil.example', '0.0.0.0:3000', '[::2]:3000', '128.0.0.1', '127.0.0.256']) {
      const res = await local.json('POST', '/api/projects', create, { host });
      expect([host, res.status]).toEqual([host, 403]);
      expect(errorOf(res.body).code).toBe('forbidden_host');
      expect((await local.json('GET', '/api/projects', undefined, { host })).status).toBe(403);
      expect((await local.json('GET', '/health', undefined, { host })).status).toBe(403);
      expect((await local.request('GET', '/api/events', { headers: { host } })).status).toBe(403);
    }
    expect(await projectCount(local)).toBe(before);
  });

  it('localhost, 127.0.0.0/8 and [::1], with any port, are this machine', async () => {
    for (const host of ['127.0.0.1:3000', '127.0.0.1', 'localhost', 'LOCALHOST:8080', '[::1]:3000', '[::1]', '127.255.10.1:1']) {
      expect([host, (await local.json('POST', '/api/projects', create, { host })).status]).toEqual([host, 201]);
      expect((await local.json('GET', '/health', undefined, { host })).status).toBe(200);
    }
  });

  it('the configured --host is accepted too (any port); a request without Host falls back to the URL', async () => {
    t = await startTestApp(ok, { host: 'troupe.internal' });
    expect((await t.json('GET', '/api/projects', undefined, { host: 'troupe.internal:3000' })).status).toBe(200);
    expect((await t.json('GET', '/api/projects', undefined, { host: 'other.internal:3000' })).status).toBe(403);
    expect((await t.json('GET', '/api/projects')).status).toBe(200); // app.request: no Host, URL http://localhost/
  });

  it('with a token, any Host is accepted (remote clients use other names; the token is the guard)', async () => {
    t = await startTestApp(ok, { apiToken: 'sekret' });
    const res = await t.json('POST', '/api/projects', create, { host: 'troupe.example.com', authorization: 'Bearer sekret' });
    expect(res.status).toBe(201);
  });
});

describe('Origin (cross-site requests)', () => {
  it('POST /api/projects from a foreign Origin → 403 forbidden_origin, nothing created', async () => {
    const before = await projectCount(local);
    for (const origin of ['http://evil.example', 'http://localhost:5173', 'https://localhost.evil.example', 'null', 'file://', 'not a url']) {
      const res = await local.json('POST', '/api/projects', create, { origin });
      expect([origin, res.status]).toEqual([origin, 403]);
      expect(errorOf(res.body).code).toBe('forbidden_origin');
    }
    expect(await projectCount(local)).toBe(before);
  });

  it('a bodyless cross-site POST …/start (a "simple" request) → 403 and no run; same-origin starts it', async () => {
    const id = await projectWithTask(local);
    const res = await local.request('POST', `/api/projects/${id}/start`, { headers: { origin: 'http://evil.example' } });
    expect(res.status).toBe(403);
    expect(errorOf(await res.json()).code).toBe('forbidden_origin');
    const bySite = await local.request('POST', `/api/projects/${id}/start`, { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(bySite.status).toBe(403);
    expect((await local.request('POST', `/api/projects/${id}/start`, { headers: { 'sec-fetch-site': 'same-site' } })).status).toBe(403);
    expect((await local.json('DELETE', `/api/projects/${id}`, undefined, { origin: 'http://evil.example' })).status).toBe(403);
    expect((await local.json<{ runs: unknown[] }>('GET', `/api/projects/${id}/runs`)).body.runs).toEqual([]);
    const same = await local.request('POST', `/api/projects/${id}/start`, { headers: { origin: 'http://localhost', 'sec-fetch-site': 'same-origin' } });
    expect(same.status).toBe(202);
    expect((await local.json<{ runs: unknown[] }>('GET', `/api/projects/${id}/runs`)).body.runs).toHaveLength(1);
  });

  it('same origin, by the Host the request names, is allowed; GETs are not checked (their answers stay unreadable cross-site)', async () => {
    expect((await local.json('POST', '/api/projects', create, { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000' })).status).toBe(201);
    expect((await local.json('POST', '/api/projects', create, { host: '[::1]:3000', origin: 'http://[::1]:3000' })).status).toBe(201);
    expect((await local.json('POST', '/api/projects', create, { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3001' })).status).toBe(403);
    expect((await local.json('GET', '/api/projects', undefined, { origin: 'http://evil.example' })).status).toBe(200);
  });

  it('with a token the same rule holds: a valid token from a foreign page is still refused', async () => {
    t = await startTestApp(ok, { apiToken: 'sekret' });
    const res = await t.json('POST', '/api/projects', create, { authorization: 'Bearer sekret', origin: 'https://evil.example' });
    expect(res.status).toBe(403);
    expect(errorOf(res.body).code).toBe('forbidden_origin');
    expect((await t.json('POST', '/api/projects', create, { authorization: 'Bearer sekret', origin: 'http://localhost' })).status).toBe(201);
  });
});

describe('request bodies', () => {
  it('a body that is not application/json → 415 unsupported_media_type, nothing created; parameters are fine', async () => {
    t = await startTestApp(ok);
    const before = await projectCount(t);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await t.request('POST', '/api/projects', { body: JSON.stringify(create), headers: { 'content-type': type } });
      expect(res.status).toBe(415);
      expect(errorOf(await res.json()).code).toBe('unsupported_media_type');
    }
    const none = await t.request('POST', '/api/projects', { body: JSON.stringify(create), headers: { 'content-type': '' } });
    expect(none.status).toBe(415);
    expect(await projectCount(t)).toBe(before);
    expect((await t.request('POST', '/api/projects', { body: JSON.stringify(create), headers: { 'content-type': 'application/json; charset=utf-8' } })).status).toBe(201);
  });

  it('control routes: no body is fine (as today), a text body is 415 and starts nothing', async () => {
    const id = await projectWithTask(local);
    const text = await local.request('POST', `/api/projects/${id}/start`, { body: 'go', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect((await local.json<{ runs: unknown[] }>('GET', `/api/projects/${id}/runs`)).body.runs).toEqual([]);
    expect((await local.request('POST', `/api/projects/${id}/start`)).status).toBe(202);
  });

  it('NUL in any body string or key → 400 naming the field', async () => {
    const before = await projectCount(local);
    const nulName = await local.json('POST', '/api/projects', { ...create, name: 'a\u0000b' });
    expect(nulName.status).toBe(400);
    expect(errorOf(nulName.body)).toMatchObject({ code: 'validation_failed', details: [{ path: 'name', message: 'must not contain NUL' }] });
    const nulArgv = await local.json('POST', '/api/projects', { name: 'x', testCommand: ['node', '--test', 'x\u0000'] });
    expect(errorOf(nulArgv.body).details).toEqual([{ path: 'testCommand.2', message: 'must not contain NUL' }]);
    expect(await projectCount(local)).toBe(before);

    const id = (await local.json('POST', '/api/projects', create)).body.id as string;
    const task = await local.json('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'a', title: 'ok', description: 'fine' }, { key: 'b', title: 'ok', description: 'bad\u0000' }] });
    expect(task.status).toBe(400);
    expect(errorOf(task.body).message).toContain('tasks.1.description: must not contain NUL');
    expect(errorOf(task.body).details).toEqual([{ path: 'tasks.1.description', message: 'must not contain NUL' }]);
    const key = await local.request('POST', `/api/projects/${id}/tasks`, { body: '{"tasks":[{"key":"a","title":"t","description":"","x\\u0000":1}]}' });
    expect(errorOf(await key.json()).details).toEqual([{ path: 'tasks.0.x\\u0000', message: 'field name must not contain NUL' }]);
    expect((await local.json<{ tasks: unknown[] }>('GET', `/api/projects/${id}/tasks`)).body.tasks).toEqual([]);
    // An escaped backslash before "u0000" is not a NUL.
    expect((await local.request('PATCH', `/api/projects/${id}`, { body: '{"name":"a\\\\u0000"}' })).status).toBe(200);
  });

  it('NUL in a query or a path parameter → 400', async () => {
    const id = (await local.json('POST', '/api/projects', create)).body.id as string;
    const query = await local.json('GET', `/api/projects/${id}/events/log?types=%00`);
    expect(query.status).toBe(400);
    expect(errorOf(query.body).details).toEqual([{ path: 'query.types', message: 'must not contain NUL' }]);
    const path = await local.json('GET', `/api/projects/${id}%00/tasks`);
    expect(path.status).toBe(400);
    expect(errorOf(path.body).details).toEqual([{ path: '(path)', message: 'must not contain NUL' }]);
    expect((await local.json('POST', `/api/projects/${id}/tasks/a%00/cancel`)).status).toBe(400);
  });
});

describe('event stream cap', () => {
  it('with maxStreams 2, the third stream (any stream route) is 503 with Retry-After; closing one frees its slot', async () => {
    t = await startTestApp(ok, { maxStreams: 2, sse: { heartbeatMs: 0 } });
    const id = (await t.json('POST', '/api/projects', create)).body.id as string;
    const first = await t.request('GET', '/api/events');
    const second = await t.request('GET', `/api/projects/${id}/events`);
    expect([first.status, second.status]).toEqual([200, 200]);
    for (const route of ['/api/events', `/api/projects/${id}/events`, `/api/projects/${id}/inspect`]) {
      const third = await t.request('GET', route);
      expect(third.status).toBe(503);
      expect(third.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(errorOf(await third.json()).code).toBe('too_many_streams');
    }
    await first.body!.cancel();
    const again = await t.request('GET', `/api/projects/${id}/inspect`);
    expect(again.status).toBe(200);
    expect((await t.request('GET', '/api/events')).status).toBe(503);
    await again.body!.cancel();
    await second.body!.cancel();
    const more = [await t.request('GET', '/api/events'), await t.request('GET', '/api/events')];
    expect(more.map((r) => r.status)).toEqual([200, 200]);
    for (const r of more) await r.body!.cancel();
  });
});
