/**
 * The real service on a loopback port, over real HTTP: SSE reconnects across a burst, many
 * clients with a stuck one, a full run driven through the API, the Stately inspector bridge.
 */
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { event } from '../../src/events/types.ts';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';
import { freePort, sse, startTestService, type TestService } from '../support/service.ts';

let s: TestService | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const ok = (req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok');

async function newProject(svc: TestService): Promise<string> {
  const res = await svc.api('POST', '/api/projects', { name: 'e2e', testCommand: 'node --test' });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

/** Appends `n` events for the project, `perTx` per transaction (a server-side burst). */
async function burst(svc: TestService, projectId: string, n: number, perTx = 100, padding = 0): Promise<void> {
  for (let i = 0; i < n; i += perTx) {
    await svc.service.runtime.outbox.transact(async (_tx, emit) => {
      for (let j = i; j < Math.min(n, i + perTx); j++) {
        emit(event('files.applied', { attempt: j, files: [{ path: `f${j}.js${'x'.repeat(padding)}`, action: 'create', bytes: j }], explanation: '' }, { projectId }));
      }
    });
  }
}

describe('the service over HTTP', () => {
  it('a client that disconnects and reconnects with its last id gets every later event exactly once, in order', async () => {
    s = await startTestService(ok);
    const projectId = await newProject(s);
    const url = `${s.url}/api/projects/${projectId}/events`;
    const first = await sse(url);
    await burst(s, projectId, 500);
    await first.until((m) => m.length >= 200);
    first.close();
    const lastId = first.lastId!;
    // Events keep coming while the client is away.
    await burst(s, projectId, 2_000);
    const second = await sse(url, { lastEventId: lastId });
    await burst(s, projectId, 500);
    const log = await s.service.runtime.eventLog(projectId, 0, 10_000);
    const total = log.events.length;
    await second.until((m) => Number(m.at(-1)?.id) === log.events.at(-1)!.seq);
    second.close();
    const seen = [...first.messages.map((m) => Number(m.id)).filter((id) => id <= Number(lastId)), ...second.messages.map((m) => Number(m.id))];
    expect(seen).toEqual(log.events.map((e) => e.seq));
    expect(new Set(seen).size).toBe(total);
    expect(total).toBe(3_000);
  });

  it('50 clients, one never reading: the other 49 get a burst of 10 000 events in order; the stuck one is cut off', async () => {
    s = await startTestService(ok);
    const projectId = await newProject(s);
    const url = `${s.url}/api/projects/${projectId}/events?since=0`;
    // The stuck client: a raw request whose response is not read (TCP backpressure) until the end.
    const stuckHead = deferred<http.IncomingMessage>();
    const stuck = http.get(url, (res) => {
      res.pause();
      stuckHead.resolve(res);
    });
    const stuckRes = await stuckHead.promise;
    const clients = await Promise.all(Array.from({ length: 49 }, () => sse(url)));
    // ~1.3 KB per event, 13 MB in all: far more than socket buffers can hide for the stuck client.
    await burst(s, projectId, 10_000, 250, 1_000);
    const last = (await s.service.runtime.eventLog(projectId, 0, 1)).events[0]!.seq + 9_999;
    await Promise.all(clients.map((c) => c.until((m) => Number(m.at(-1)?.id) === last)));
    for (const c of clients) {
      const ids = c.messages.map((m) => Number(m.id));
      expect(ids).toHaveLength(10_000);
      expect(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1)).toBe(true);
      c.close();
    }
    // The stuck client was cut off rather than holding the bus: reading now, its stream ends
    // early (a final stream.overflow frame, or a reset socket) without the whole burst.
    const ended = deferred<string>();
    let text = '';
    stuckRes.setEncoding('utf8');
    stuckRes.on('data', (chunk: string) => (text += chunk));
    stuckRes.on('end', () => ended.resolve('end'));
    stuckRes.on('error', () => ended.resolve('reset'));
    stuckRes.on('close', () => ended.resolve('closed'));
    stuckRes.resume();
    await ended.promise;
    const stuckFrames = text.split('\n\n').filter((f) => f.startsWith('id: ')).length;
    expect(stuckFrames).toBeLessThan(10_000);
    if (text.includes('event: stream.overflow')) expect(text.trimEnd().endsWith('"}')).toBe(true);
    stuck.destroy();
  }, 120_000);

  it('a bodiless POST without Content-Length (as curl -X POST sends it) is accepted by retry', async () => {
    s = await startTestService(ok);
    const projectId = await newProject(s);
    await s.api('POST', `/api/projects/${projectId}/tasks`, { tasks: [{ key: 'a', title: 'A', description: '' }] });
    expect((await s.api('POST', `/api/projects/${projectId}/tasks/a/cancel`)).status).toBe(202);
    const { port } = new URL(s.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => {
        socket.write(`POST /api/projects/${projectId}/tasks/a/retry HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      });
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(raw.split('\r\n')[0]).toBe('HTTP/1.1 202 Accepted');
    expect(raw).toContain('"status":"pending"');
  });

  it('runs a project end to end through the API while a client watches the stream', async () => {
    s = await startTestService(ok);
    const projectId = await newProject(s);
    const watcher = await sse(`${s.url}/api/projects/${projectId}/events?types=task.status_changed,run.completed`);
    expect((await s.api('POST', `/api/projects/${projectId}/tasks`, { tasks: [{ key: 'a', title: 'A', description: '' }, { key: 'b', title: 'B', description: '', dependsOn: ['a'] }] })).status).toBe(201);
    const started = await s.api<{ run: { id: string } }>('POST', `/api/projects/${projectId}/start`);
    expect(started.status).toBe(202);
    await watcher.until((m) => m.some((x) => x.event === 'run.completed'));
    watcher.close();
    expect(watcher.messages.filter((m) => m.event === 'task.status_changed').map((m) => (JSON.parse(m.data) as { data: { key: string; to: string } }).data)).toEqual([
      expect.objectContaining({ key: 'a', to: 'in_progress' }),
      expect.objectContaining({ key: 'a', to: 'completed' }),
      expect.objectContaining({ key: 'b', to: 'in_progress' }),
      expect.objectContaining({ key: 'b', to: 'completed' }),
    ]);
    const project = await s.api('GET', `/api/projects/${projectId}`);
    expect(project.body).toMatchObject({ status: 'completed', progress: { completed: 2, percent: 100 } });
    expect((await s.api('GET', '/health')).body).toMatchObject({ status: 'ok', db: 'ok' });
  });

  it('with --inspect, a WebSocket receiver on the inspector port sees the lead and the workers move', async () => {
    const inspectPort = await freePort();
    s = await startTestService(ok, { inspectPort });
    const received: { type: string; name?: string; sessionId?: string; snapshot?: { value?: unknown } }[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${inspectPort}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const sawWorkerCommit = deferred();
    ws.on('message', (data: WebSocket.RawData) => {
      const msg = JSON.parse((data as Buffer).toString('utf8')) as (typeof received)[number];
      received.push(msg);
      if (msg.type === '@xstate.snapshot' && JSON.stringify(msg.snapshot?.value) === '{"working":"committing"}') sawWorkerCommit.resolve();
    });
    const projectId = await newProject(s);
    await s.api('POST', `/api/projects/${projectId}/tasks`, { tasks: [{ key: 'a', title: 'Server code', description: '' }] });
    await s.api('POST', `/api/projects/${projectId}/start`);
    await sawWorkerCommit.promise;
    ws.close();
    const actors = received.filter((m) => m.type === '@xstate.actor').map((m) => m.name);
    expect(actors).toEqual(expect.arrayContaining(['lead', 'backend-1']));
    expect(received.filter((m) => m.type === '@xstate.snapshot').length).toBeGreaterThan(3);
    expect(JSON.stringify(received)).not.toContain('sk-test-not-a-secret');
  });
});
