/**
 * A real Troupe service listening on a random loopback port (in this process), with the real
 * SDK pointed at a scripted Messages API, and an SSE client built on fetch + eventsource-parser.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { loadConfig, type Config } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { startService, type Service, type ServiceOptions } from '../../src/main.ts';
import { startScriptedModel, type Responder, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { isolatedDatabase } from './db.ts';

export interface TestService {
  service: Service;
  model: ScriptedModel;
  url: string;
  config: Config;
  api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startTestService(respond: Responder, opts: { inspectPort?: number; sse?: ServiceOptions['sse']; apiToken?: string } = {}): Promise<TestService> {
  const model = await startScriptedModel(respond);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-e2e-'));
  const db = await isolatedDatabase();
  const config = loadConfig(
    { PATH: process.env.PATH, HOME: process.env.HOME, ...(db ? { DATABASE_URL: db.url } : {}), ...(opts.apiToken ? { TROUPE_API_TOKEN: opts.apiToken } : {}) },
    { port: 0, host: '127.0.0.1', dataDir, inspectPort: opts.inspectPort },
  );
  const client = new Anthropic({ baseURL: model.url, apiKey: 'sk-test-not-a-secret', maxRetries: 0 });
  let service: Service;
  try {
    service = await startService(config, { logger: silentLogger, client, sse: opts.sse });
  } catch (e) {
    // A test of a refused start (a busy port) must not leave the model, the database or the data dir behind.
    await model.close();
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.apiToken) headers.authorization = `Bearer ${opts.apiToken}`;
  return {
    service,
    model,
    url: service.url,
    config,
    async api<T>(method: string, p: string, body?: unknown) {
      const res = await fetch(`${service.url}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
    },
    async close() {
      await service.stop();
      await model.close();
      await db?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface SseClient {
  messages: EventSourceMessage[];
  lastId: string | undefined;
  /** Resolves when `match` holds for the messages received so far. */
  until(match: (messages: EventSourceMessage[]) => boolean): Promise<void>;
  /** Resolves when the server ended the stream. */
  ended: Promise<void>;
  close(): void;
}

/** A real SSE client over HTTP: fetch + eventsource-parser; `lastEventId` resumes like EventSource does. */
export async function sse(url: string, opts: { lastEventId?: string; headers?: Record<string, string> } = {}): Promise<SseClient> {
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream', ...opts.headers };
  if (opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
  const res = await fetch(url, { headers, signal: controller.signal });
  if (res.status !== 200 || !res.body) throw new Error(`SSE ${url} answered ${res.status}`);
  const messages: EventSourceMessage[] = [];
  const waiters: { match: (m: EventSourceMessage[]) => boolean; resolve: () => void }[] = [];
  const client: SseClient = {
    messages,
    lastId: opts.lastEventId,
    until(match) {
      if (match(messages)) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    ended: Promise.resolve(),
    close: () => controller.abort(),
  };
  const parser = createParser({
    onEvent(message) {
      messages.push(message);
      if (message.id) client.lastId = message.id;
      for (const w of [...waiters]) {
        if (w.match(messages)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    },
  });
  const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const decoder = new TextDecoder();
  client.ended = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // aborted by close(), or the server dropped the connection
    }
  })();
  return client;
}
