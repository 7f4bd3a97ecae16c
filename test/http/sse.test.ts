import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatSseFrame, openSse, type SseChannel, type SseCloseReason, type SseOptions } from '../../src/http/sse.ts';
import { deferred } from '../support/deferred.ts';

const CONNECTED = ': connected\n\n';
const OVERFLOW =
  'event: stream.overflow\ndata: {"reason":"the client is not reading fast enough; reconnect with Last-Event-ID to resume"}\n\n';

/** A tiny app whose one route opens a channel; the test gets the channel and its close reasons. */
function sseApp(options: SseOptions = {}) {
  const opened = deferred<SseChannel>();
  const closed = deferred<SseCloseReason>();
  const reasons: SseCloseReason[] = [];
  const app = new Hono();
  app.get('/events', (c) => {
    const { response, channel } = openSse({ ...options, signal: c.req.raw.signal });
    channel.onClose((reason) => {
      reasons.push(reason);
      closed.resolve(reason);
    });
    opened.resolve(channel);
    return response;
  });
  return { app, opened: opened.promise, closed: closed.promise, reasons };
}

async function open(options: SseOptions = {}) {
  const t = sseApp(options);
  const res = await t.app.request('/events');
  const channel = await t.opened;
  if (!res.body) throw new Error('no body');
  return { ...t, res, channel, reader: res.body.getReader() };
}

/** Reads until the text received so far ends with `suffix`; returns all of it. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, suffix: string): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  while (!text.endsWith(suffix)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`stream ended before ${JSON.stringify(suffix)}; got ${JSON.stringify(text)}`);
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

async function readToEnd(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    text += decoder.decode(value, { stream: true });
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('formatSseFrame', () => {
  it('writes id, event, then one data line per line of data', () => {
    expect(formatSseFrame({ id: 7, event: 'task.created', data: '{"a":1}' })).toBe('id: 7\nevent: task.created\ndata: {"a":1}\n\n');
    expect(formatSseFrame({ data: 'a\nb\r\nc\rd' })).toBe('data: a\ndata: b\ndata: c\ndata: d\n\n');
    expect(formatSseFrame({ data: '' })).toBe('data: \n\n');
  });

  it('refuses CR or LF in id and event', () => {
    expect(() => formatSseFrame({ id: '1\n2', data: 'x' })).toThrow(TypeError);
    expect(() => formatSseFrame({ event: 'a\rb', data: 'x' })).toThrow(TypeError);
  });
});

describe('openSse over app.request()', () => {
  it('sends the SSE head, the initial comment and exact frames', async () => {
    const { res, channel, reader } = await open();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache, no-transform');
    expect(res.headers.get('connection')).toBe('keep-alive');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    expect(await readUntil(reader, CONNECTED)).toBe(CONNECTED);

    expect(channel.send({ id: 7, event: 'task.created', data: '{"a":1}' })).toBe(true);
    expect(channel.send({ id: 8, event: 'task.assigned', data: '{"b":2}' })).toBe(true);
    expect(await readUntil(reader, '{"b":2}\n\n')).toBe(
      'id: 7\nevent: task.created\ndata: {"a":1}\n\nid: 8\nevent: task.assigned\ndata: {"b":2}\n\n',
    );
    expect(channel.lastFlushedId).toBe('8');
    await reader.cancel();
  });

  it('sends a `: ping` comment every heartbeatMs and stops the timer when the client cancels', async () => {
    vi.useFakeTimers();
    const { channel, reader, closed, reasons } = await open({ heartbeatMs: 15_000 });
    expect(vi.getTimerCount()).toBe(1);
    expect(await readUntil(reader, CONNECTED)).toBe(CONNECTED);
    vi.advanceTimersByTime(15_000);
    expect(await readUntil(reader, '\n\n')).toBe(': ping\n\n');

    await reader.cancel();
    expect(await closed).toBe('client');
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(channel.send({ id: 1, data: 'late' })).toBe(false);
    expect(channel.closed).toBe(true);
    expect(reasons).toEqual(['client']);
  });

  it('ends the stream when the request signal aborts', async () => {
    const t = sseApp();
    const ac = new AbortController();
    const res = await t.app.request('/events', { signal: ac.signal });
    const channel = await t.opened;
    ac.abort();
    expect(await t.closed).toBe('client');
    expect(channel.send({ data: 'x' })).toBe(false);
    expect(await readToEnd(res.body!.getReader())).toBe(CONNECTED);
  });

  it('close() ends the stream after what is queued', async () => {
    const { channel, reader, closed } = await open();
    channel.send({ id: 1, event: 'run.completed', data: '{}' });
    channel.close();
    expect(channel.send({ id: 2, data: 'after' })).toBe(false);
    expect(await closed).toBe('closed');
    expect(await readToEnd(reader)).toBe(`${CONNECTED}id: 1\nevent: run.completed\ndata: {}\n\n`);
    expect(channel.lastFlushedId).toBe('1');
  });

  it('cuts off a client that never reads: one overflow frame, then the end', async () => {
    const { channel, reader, closed, reasons } = await open({ maxQueuedBytes: 10_000 });
    const data = JSON.stringify({ filler: 'x'.repeat(80) });
    let accepted = 0;
    while (channel.send({ id: accepted + 1, event: 'progress', data })) accepted += 1;
    expect(accepted).toBeGreaterThan(50);
    expect(accepted * formatSseFrame({ id: accepted, event: 'progress', data }).length).toBeLessThanOrEqual(10_000);
    expect(await closed).toBe('overflow');
    expect(channel.closed).toBe(true);
    expect(channel.send({ id: 999, data })).toBe(false);
    expect(channel.lastFlushedId).toBeUndefined();
    // Nothing was read, so nothing was handed to the body: the connected comment, then overflow.
    expect(await readToEnd(reader)).toBe(CONNECTED + OVERFLOW);
    expect(reasons).toEqual(['overflow']);
  });

  it('a reader that keeps up receives 10 000 frames in order, nothing lost', async () => {
    const { channel, reader } = await open({ maxQueuedBytes: 16 * 1024 });
    const produce = async () => {
      for (let i = 1; i <= 10_000; i += 1) {
        if (!channel.send({ id: i, event: 'progress', data: `{"n":${i}}` })) throw new Error(`send ${i} refused`);
        if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve)); // let the reader run
      }
      channel.close();
    };
    const [, text] = await Promise.all([produce(), readToEnd(reader)]);
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
    expect(text).toContain('id: 10000\nevent: progress\ndata: {"n":10000}\n\n');
  });

  it('runs a late onClose at once and survives a throwing listener', async () => {
    const { channel, reader } = await open();
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    channel.onClose(() => {
      throw new Error('boom');
    });
    await reader.cancel();
    expect(error).toHaveBeenCalledOnce();
    error.mockRestore();
    const late = vi.fn();
    channel.onClose(late);
    expect(late).toHaveBeenCalledWith('client');
  });
});

describe('openSse behind @hono/node-server', () => {
  it('sends the head before any event and sees the client abort', async () => {
    const t = sseApp();
    const listening = deferred<AddressInfo>();
    const server = serve({ fetch: t.app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => listening.resolve(info)) as Server;
    try {
      const { port } = await listening.promise;
      const ac = new AbortController();
      const res = await fetch(`http://127.0.0.1:${port}/events`, { signal: ac.signal });
      const channel = await t.opened;
      // The response promise resolved while the channel has sent nothing.
      expect(channel.lastFlushedId).toBeUndefined();
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      const reader = res.body!.getReader();
      expect(await readUntil(reader, CONNECTED)).toBe(CONNECTED);

      expect(channel.send({ id: 1, event: 'run.started', data: '{"status":"running"}' })).toBe(true);
      expect(await readUntil(reader, '\n\n')).toBe('id: 1\nevent: run.started\ndata: {"status":"running"}\n\n');

      ac.abort();
      expect(await t.closed).toBe('client');
      expect(channel.send({ id: 2, data: '{}' })).toBe(false);
      expect(t.reasons).toEqual(['client']);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    }
  });
});

describe('room for a producer that can wait', () => {
  it('room() resolves at once below half the limit, waits while the queue is fuller, and resolves when the client reads', async () => {
    const { channel, reader } = await open({ maxQueuedBytes: 1000, heartbeatMs: 0 });
    await readUntil(reader, CONNECTED);
    await channel.room();
    const frame = { id: 1, event: 'x', data: 'y'.repeat(300) };
    expect(channel.send(frame)).toBe(true);
    expect(channel.send({ ...frame, id: 2 })).toBe(true);
    let released = false;
    const room = channel.room().then(() => (released = true));
    await Promise.resolve();
    expect(released).toBe(false);
    await readUntil(reader, `id: 2\nevent: x\ndata: ${'y'.repeat(300)}\n\n`);
    await room;
    expect(released).toBe(true);
    await reader.cancel();
    await channel.room();
  });
});

