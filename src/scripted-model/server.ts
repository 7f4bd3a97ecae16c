/**
 * A scripted double of the Anthropic Messages API on loopback. The real SDK talks to it over
 * HTTP (point `ANTHROPIC_BASE_URL` or `baseURL` at `url`), so tests and the offline demo run
 * the same code path as production. It records every request, how many were in flight at
 * once, and when a client gave up on a request (an aborted call closes its connection).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
}

export type Reply =
  | { kind: 'tool'; name: string; input: unknown; usage?: Partial<Usage>; stopReason?: string }
  | { kind: 'text'; text: string; usage?: Partial<Usage> }
  | { kind: 'error'; status: number; type: string; message: string; retryAfterMs?: number }
  /** Never answers; the request stays open until the client closes it. */
  | { kind: 'hang' }
  | { kind: 'delay'; ms: number; then: Reply };

export interface MessagesRequest {
  /** Sequence number of the request, from 1. */
  n: number;
  body: {
    model?: string;
    system?: unknown;
    messages?: { role: string; content: unknown }[];
    tool_choice?: { type: string; name?: string };
    tools?: { name: string }[];
    [k: string]: unknown;
  };
  /** The forced tool (`write_files`, `create_tasks`), if any. */
  tool: string | null;
  /** `Task key:` and `Attempt:` lines of a worker request (null for others). */
  taskKey: string | null;
  attempt: number | null;
  /** Text of the user message(s). */
  text: string;
  authorization: string | null;
  apiKey: string | null;
  receivedAt: number;
  /** Set when the client closed the connection before an answer was sent. */
  abortedAt: number | null;
  answeredAt: number | null;
}

export type Responder = (request: MessagesRequest) => Reply | Promise<Reply>;

export interface ScriptedModel {
  readonly url: string;
  readonly requests: MessagesRequest[];
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Resolves with the first request (from now or already received) that matches. */
  waitForRequest(match: (r: MessagesRequest) => boolean): Promise<MessagesRequest>;
  /** Resolves when `request` was aborted by its client. */
  waitForAbort(request: MessagesRequest): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_USAGE: Usage = { input_tokens: 1200, output_tokens: 400, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };

export async function startScriptedModel(respond: Responder, opts: { port?: number } = {}): Promise<ScriptedModel> {
  const requests: MessagesRequest[] = [];
  const waiters: { match: (r: MessagesRequest) => boolean; resolve: (r: MessagesRequest) => void }[] = [];
  const abortWaiters = new Map<MessagesRequest, (() => void)[]>();
  let inFlight = 0;
  let maxInFlight = 0;

  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || !req.url?.startsWith('/v1/messages')) {
      send(res, 404, { type: 'error', error: { type: 'not_found_error', message: `no route ${req.method} ${req.url}` } });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: MessagesRequest['body'];
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as MessagesRequest['body'];
      } catch {
        send(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'body is not JSON' } });
        return;
      }
      const request = describe(requests.length + 1, body, req.headers);
      requests.push(request);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        inFlight--;
      };
      res.on('close', () => {
        if (request.answeredAt === null) {
          request.abortedAt = Date.now();
          for (const resolve of abortWaiters.get(request) ?? []) resolve();
          abortWaiters.delete(request);
        }
        finish();
      });
      for (const w of [...waiters]) {
        if (w.match(request)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(request);
        }
      }
      void Promise.resolve()
        .then(() => respond(request))
        .then((reply) => answer(res, request, reply))
        .catch((e: unknown) => send(res, 500, { type: 'error', error: { type: 'api_error', message: String(e) } }));
    });
  });

  const answer = async (res: http.ServerResponse, request: MessagesRequest, reply: Reply): Promise<void> => {
    if (res.destroyed) return;
    switch (reply.kind) {
      case 'hang':
        return;
      case 'delay':
        await new Promise((r) => setTimeout(r, reply.ms));
        return answer(res, request, reply.then);
      case 'error': {
        const headers: Record<string, string> = {};
        if (reply.retryAfterMs !== undefined) headers['retry-after-ms'] = String(reply.retryAfterMs);
        request.answeredAt = Date.now();
        send(res, reply.status, { type: 'error', error: { type: reply.type, message: reply.message } }, headers);
        return;
      }
      case 'tool':
      case 'text': {
        const content =
          reply.kind === 'tool'
            ? [{ type: 'tool_use', id: `toolu_${randomBytes(8).toString('hex')}`, name: reply.name, input: reply.input }]
            : [{ type: 'text', text: reply.text, citations: null }];
        request.answeredAt = Date.now();
        send(res, 200, {
          id: `msg_${randomBytes(8).toString('hex')}`,
          type: 'message',
          role: 'assistant',
          model: request.body.model ?? 'unknown',
          content,
          stop_reason: reply.kind === 'tool' ? (reply.stopReason ?? 'tool_use') : 'end_turn',
          stop_sequence: null,
          usage: { ...DEFAULT_USAGE, ...reply.usage },
        });
        return;
      }
    }
  };

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    waitForRequest(match) {
      const found = requests.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    waitForAbort(request) {
      if (request.abortedAt !== null) return Promise.resolve();
      return new Promise((resolve) => abortWaiters.set(request, [...(abortWaiters.get(request) ?? []), resolve]));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function describe(n: number, body: MessagesRequest['body'], headers: http.IncomingHttpHeaders): MessagesRequest {
  const text = (body.messages ?? [])
    .filter((m) => m.role === 'user')
    .map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content)))
    .join('\n');
  const key = /^Task key: (.+)$/m.exec(text)?.[1] ?? null;
  const attempt = /^Attempt: (\d+)/m.exec(text)?.[1];
  const header = (name: string) => {
    const v = headers[name];
    return typeof v === 'string' ? v : null;
  };
  return {
    n,
    body,
    tool: body.tool_choice?.type === 'tool' ? (body.tool_choice.name ?? null) : null,
    taskKey: key,
    attempt: attempt ? Number(attempt) : null,
    text,
    authorization: header('authorization'),
    apiKey: header('x-api-key'),
    receivedAt: Date.now(),
    abortedAt: null,
    answeredAt: null,
  };
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.headersSent) return;
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...headers });
  res.end(json);
}
