/**
 * The Hono app over a real test runtime, called with `app.request()` (no network).
 */
import { createApp } from '../../src/http/app.ts';
import { silentLogger } from '../../src/logger.ts';
import type { Responder } from '../../src/scripted-model/server.ts';
import { startTestRuntime, type TestRuntime } from './runtime.ts';

export interface TestApp extends TestRuntime {
  request(method: string, path: string, init?: { body?: unknown; headers?: Record<string, string> }): Promise<Response>;
  json<T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T; headers: Headers }>;
  closeStreams(): void;
}

export interface TestAppOptions {
  apiToken?: string;
  bodyLimitBytes?: number;
  sse?: { heartbeatMs?: number; maxQueuedBytes?: number };
  /** The configured listen host (default: none, only loopback names pass the Host check). */
  host?: string;
  maxStreams?: number;
}

/** `app.request(path)` builds `http://localhost/…` and sends no Host header: the Host check reads the URL then. */
export async function startTestApp(respond: Responder, opts: TestAppOptions = {}): Promise<TestApp> {
  const t = await startTestRuntime(respond);
  const created = createApp({
    runtime: t.runtime,
    bus: t.bus,
    logger: silentLogger,
    version: '0.1.0',
    apiToken: opts.apiToken,
    bodyLimitBytes: opts.bodyLimitBytes,
    sse: opts.sse,
    host: opts.host,
    maxStreams: opts.maxStreams,
  });
  const { app } = created;
  const closeStreams = () => created.closeStreams();
  const request: TestApp['request'] = (method, path, init = {}) => {
    const headers: Record<string, string> = { ...init.headers };
    let body: string | undefined;
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
      headers['content-type'] ??= 'application/json';
    }
    return Promise.resolve(app.request(path, { method, headers, body }));
  };
  const closeRuntime = t.close.bind(t);
  return Object.assign(t, {
    request,
    async json<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>) {
      const res = await request(method, path, { body, headers });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : null) as T, headers: res.headers };
    },
    closeStreams,
    async close() {
      closeStreams();
      await closeRuntime();
    },
  });
}

/** Reads SSE text from a response body until `until(text)` holds; cancels the reader afterwards. */
export async function readSse(res: Response, until: (text: string) => boolean): Promise<string> {
  const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (!until(text)) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel();
  }
  return text;
}

/** Parses SSE text into frames (comments dropped). */
export function parseFrames(text: string): { id?: string; event?: string; data: string }[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '' && !block.split('\n').every((l) => l.startsWith(':')))
    .map((block) => {
      const frame: { id?: string; event?: string; data: string } = { data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = line.slice(0, i);
        const value = line.slice(i + 1).replace(/^ /, '');
        if (field === 'id') frame.id = value;
        else if (field === 'event') frame.event = value;
        else if (field === 'data') data.push(value);
      }
      frame.data = data.join('\n');
      return frame;
    });
}
