/**
 * The `--inspect` bridge over real sockets: where it binds, who may connect (Host, Origin, token),
 * what viewers receive, and a busy port as a clear startup error of the service.
 */
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createActor, createMachine } from 'xstate';
import { startInspectorBridge, STATELY_ORIGIN, type InspectorBridge } from '../../src/http/inspector-bridge.ts';
import { silentLogger } from '../../src/logger.ts';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';
import { freePort, startTestService, type TestService } from '../support/service.ts';

let bridge: InspectorBridge | undefined;
let s: TestService | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await bridge?.close();
  bridge = undefined;
  await s?.close();
  s = undefined;
});

const ok = (req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok');

/** Connects; resolves with 'open' or the HTTP status the upgrade was refused with. */
function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number | 'open'; ws: WebSocket; messages: unknown[] }> {
  const ws = new WebSocket(url, options);
  sockets.push(ws);
  const messages: unknown[] = [];
  ws.on('message', (data: WebSocket.RawData) => messages.push(JSON.parse((data as Buffer).toString('utf8'))));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ status: 'open', ws, messages }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, ws, messages }));
    ws.once('error', reject);
  });
}

function get(port: number, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', headers }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

const nonLoopbackIPv4 = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

describe('inspector bridge', () => {
  it('binds the service host (loopback), and a wildcard host becomes 127.0.0.1, never every interface', async () => {
    bridge = await startInspectorBridge({ host: '0.0.0.0', port: 0, token: 'sekret', logger: silentLogger });
    expect(bridge.address.address).toBe('127.0.0.1');
    if (nonLoopbackIPv4) {
      const refused = await new Promise<string>((resolve) => {
        const socket = net.connect(bridge!.address.port, nonLoopbackIPv4, () => resolve('connected'));
        socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      expect(refused).toBe('ECONNREFUSED');
    }
    await bridge.close();
    bridge = await startInspectorBridge({ host: '127.0.0.1', port: 0, logger: silentLogger });
    expect(bridge.address.address).toBe('127.0.0.1');
  });

  it('with a token, an upgrade without it (or with a wrong one) is 401; ?access_token= or a bearer header opens', async () => {
    bridge = await startInspectorBridge({ host: '127.0.0.1', port: 0, token: 'sekret', logger: silentLogger });
    const url = `ws://127.0.0.1:${bridge.address.port}/`;
    expect((await connect(url)).status).toBe(401);
    expect((await connect(`${url}?access_token=nope`)).status).toBe(401);
    expect((await connect(`${url}?access_token=sekret`)).status).toBe('open');
    expect((await connect(url, { headers: { authorization: 'Bearer sekret' } })).status).toBe('open');
  });

  it('a browser upgrade from a foreign Origin is 403, even on loopback; its own page and the Stately inspector may connect', async () => {
    bridge = await startInspectorBridge({ host: '127.0.0.1', port: 0, token: 'sekret', logger: silentLogger });
    const port = bridge.address.port;
    const url = `ws://127.0.0.1:${port}/?access_token=sekret`;
    for (const origin of ['http://evil.example', `http://localhost:${port + 1}`, 'null']) {
      expect([origin, (await connect(url, { origin })).status]).toEqual([origin, 403]);
    }
    expect((await connect(`ws://127.0.0.1:${port}/`, { origin: 'http://evil.example' })).status).toBe(403); // before the token
    expect((await connect(url, { origin: `http://127.0.0.1:${port}` })).status).toBe('open');
    expect((await connect(url, { origin: STATELY_ORIGIN })).status).toBe('open');
  });

  it('without a token, a foreign Host (DNS rebinding) is 403 for the page and the upgrade', async () => {
    bridge = await startInspectorBridge({ host: '127.0.0.1', port: 0, logger: silentLogger });
    const port = bridge.address.port;
    expect((await connect(`ws://127.0.0.1:${port}/`, { headers: { host: `evil.example:${port}` }, origin: `http://evil.example:${port}` })).status).toBe(403);
    expect((await connect(`ws://127.0.0.1:${port}/`, { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect((await get(port, { host: 'evil.example' })).status).toBe(403);
    const page = await get(port, { host: `localhost:${port}` });
    expect(page.status).toBe(200);
    expect(page.body).toContain('https://stately.ai/inspect');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
  });

  it('relays inspection events in the @statelyai/inspect wire format; a late viewer gets the recent ones; viewers cannot inject', async () => {
    bridge = await startInspectorBridge({ host: '127.0.0.1', port: 0, logger: silentLogger });
    const url = `ws://127.0.0.1:${bridge.address.port}/`;
    const first = await connect(url);
    const injector = await connect(url);
    injector.ws.send(JSON.stringify({ type: '@xstate.snapshot', sessionId: 'fake' }));
    const machine = createMachine({ id: 'toggle', initial: 'off', states: { off: { on: { FLIP: 'on' } }, on: {} } });
    const b = bridge;
    const actor = createActor(machine, { inspect: (e) => b.inspect(e) }).start();
    actor.send({ type: 'FLIP' });
    const got = deferred();
    const poll = setInterval(() => {
      if (first.messages.some((m) => (m as { type: string }).type === '@xstate.snapshot' && (m as { snapshot: { value?: unknown } }).snapshot.value === 'on')) got.resolve();
    }, 10);
    await got.promise;
    clearInterval(poll);
    expect(first.messages).toContainEqual(expect.objectContaining({ type: '@xstate.actor', name: 'toggle', sessionId: actor.sessionId }));
    expect(first.messages).toContainEqual(expect.objectContaining({ type: '@xstate.event', event: { type: 'FLIP' } }));
    expect(first.messages).toContainEqual(expect.objectContaining({ type: '@xstate.snapshot', snapshot: expect.objectContaining({ value: 'on' }) as unknown }));
    expect(JSON.stringify(first.messages)).not.toContain('fake');
    const late = await connect(url);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(late.messages).toEqual(first.messages);
    actor.stop();
  });
});

describe('the service with --inspect', () => {
  it('a busy inspector port rejects startService with a sentence naming the port (no uncaught exception)', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      await expect(startTestService(ok, { inspectPort: port })).rejects.toThrow(`inspector port ${port} is in use`);
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  }, 90_000); // the store is opened and migrated before the bridge starts: slow on a busy machine

  it('with a token, the bridge needs it too; with it the lead and workers are seen moving', async () => {
    const inspectPort = await freePort();
    s = await startTestService(ok, { inspectPort, apiToken: 'sekret' });
    expect((await connect(`ws://127.0.0.1:${inspectPort}/`)).status).toBe(401);
    const viewer = await connect(`ws://127.0.0.1:${inspectPort}/?access_token=sekret`);
    expect(viewer.status).toBe('open');
    const res = await s.api('POST', '/api/projects', { name: 'inspect', testCommand: 'node --test' });
    const id = res.body.id as string;
    await s.api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'a', title: 'Server code', description: '' }] });
    expect((await s.api('POST', `/api/projects/${id}/start`)).status).toBe(202);
    const seen = deferred();
    const poll = setInterval(() => {
      const names = viewer.messages.filter((m) => (m as { type: string }).type === '@xstate.actor').map((m) => (m as { name: string }).name);
      if (names.includes('lead') && names.includes('backend-1')) seen.resolve();
    }, 20);
    await seen.promise;
    clearInterval(poll);
    expect(JSON.stringify(viewer.messages)).not.toContain('sk-test-not-a-secret');
  });
});
