/**
 * The `--inspect` bridge: this process's XState inspection events, relayed over a WebSocket to the
 * Stately inspector page. Wire-compatible with `createInspectorServer` of @statelyai/inspect: the
 * page on `/` frames https://stately.ai/inspect and forwards each WebSocket message (one JSON
 * inspection event, as `createWebSocketInspector` sends it) into the frame; a new viewer first
 * gets the last 200 messages.
 *
 * Threat: inspection events carry machine definitions, states, task keys and paths. The library's
 * server listens on every interface, relays to any page that connects, lets any client inject
 * events, and a busy port is an uncaught exception. Here:
 * - it binds to the service's host (loopback by default); a wildcard host (`0.0.0.0`, `::`) becomes
 *   127.0.0.1 — never every interface;
 * - without a token, a `Host` that is not a loopback name or the configured host → 403 (DNS
 *   rebinding, as in exposure.ts);
 * - a browser's upgrade must come from the bridge's own page (same origin) or from the Stately
 *   inspector (https://stately.ai) → else 403: any other page is refused even on loopback;
 * - with a token, the upgrade needs it: `?access_token=` (a browser cannot set WebSocket headers;
 *   open the page as `/?access_token=…`) or `Authorization: Bearer` → else 401;
 * - the producer is this process, in-process (no internal socket, no token in a URL): viewers
 *   only receive, what they send is dropped; at most MAX_VIEWERS, and one that stops reading is cut off;
 * - a listen error rejects `startInspectorBridge` with a sentence naming the port.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { InspectionEvent } from 'xstate';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../logger.ts';
import { errorBody } from './errors.ts';
import { isAllowedHost, isSameOrigin } from './exposure.ts';
import { sameSecret } from './middleware.ts';

export const STATELY_ORIGIN = 'https://stately.ai';
const INSPECTOR_URL = `${STATELY_ORIGIN}/inspect`;
const REPLAY = 200;
const MAX_VIEWERS = 32;
/** A viewer with this much unsent is not reading: cut off (it can reload the page). */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);

export interface InspectorBridgeOptions {
  /** The service's listen host; a wildcard binds 127.0.0.1. */
  host: string;
  port: number;
  /** TROUPE_API_TOKEN: when set, every viewer must present it. */
  token?: string | undefined;
  logger: Logger;
  /** Sanitising options for `createInspector` (what leaves the process). */
  inspectorOptions?: Parameters<typeof createInspector>[1];
}

export interface InspectorBridge {
  /** The address actually bound. */
  readonly address: AddressInfo;
  /** The page to open (without the token). */
  readonly url: string;
  /** Feeds one XState inspection event (an actor system's `inspect` callback). Never throws. */
  inspect(event: InspectionEvent): void;
  /** Idempotent. */
  close(): Promise<void>;
}

export async function startInspectorBridge(o: InspectorBridgeOptions): Promise<InspectorBridge> {
  const bindHost = WILDCARD.has(o.host) ? '127.0.0.1' : o.host.replace(/^\[|\]$/g, '');
  const recent: string[] = [];
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });

  const refusal = (req: http.IncomingMessage): [number, string, string] | undefined => {
    const host = req.headers.host ?? '';
    if (!o.token && !isAllowedHost(host, o.host)) return [403, 'forbidden_host', 'this bridge answers only to a loopback host name without TROUPE_API_TOKEN'];
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== STATELY_ORIGIN && !isSameOrigin(origin, host)) return [403, 'forbidden_origin', `origin ${origin} may not watch the inspector`];
    if (o.token) {
      const query = new URL(req.url ?? '/', 'http://bridge').searchParams.get('access_token');
      const given = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? query ?? undefined;
      if (given === undefined || !sameSecret(given, o.token)) return [401, 'unauthorized', given === undefined ? 'missing token (?access_token=)' : 'invalid token'];
    }
    if (wss.clients.size >= MAX_VIEWERS) return [503, 'too_many_viewers', `${MAX_VIEWERS} viewers are connected already`];
    return undefined;
  };

  const server = http.createServer(function bridgePage(req, res) {
    const host = req.headers.host ?? '';
    if (!o.token && !isAllowedHost(host, o.host)) return answer(res, 403, 'forbidden_host', 'this bridge answers only to a loopback host name without TROUPE_API_TOKEN');
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, 'method_not_allowed', 'GET only');
    if (new URL(req.url ?? '/', 'http://bridge').pathname !== '/') return answer(res, 404, 'not_found', 'the bridge page is /');
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      // The address may carry ?access_token=: it must not travel to stately.ai as a Referer.
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "frame-ancestors 'none'",
    });
    res.end(req.method === 'HEAD' ? undefined : BRIDGE_PAGE);
  });

  server.on('upgrade', function bridgeUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer) {
    const refused = refusal(req);
    if (refused) return refuseUpgrade(socket, ...refused);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => ws.terminate());
      for (const text of recent) ws.send(text);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(listenError(e, bindHost, o.port)));
    server.listen(o.port, bindHost, () => resolve());
  });
  server.on('error', (e) => o.logger.warn({ err: e }, 'inspector bridge error'));
  const address = server.address() as AddressInfo;

  const broadcast = (text: string): void => {
    recent.push(text);
    if (recent.length > REPLAY) recent.shift();
    for (const ws of wss.clients) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) ws.terminate();
      else ws.send(text);
    }
  };
  const inspector = createInspector(
    { send: (event: StatelyInspectionEvent) => broadcast(safeJson(event)), start: () => undefined, stop: () => undefined },
    o.inspectorOptions,
  );

  let closing: Promise<void> | undefined;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    address,
    url: `http://${shownHost}:${address.port}/`,
    inspect(event) {
      try {
        inspector.inspect.next?.(event);
      } catch (e) {
        o.logger.warn({ err: e }, 'inspector bridge could not relay an event');
      }
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const why =
    e.code === 'EADDRINUSE'
      ? `inspector port ${port} is in use: stop what listens there or choose another with --inspect=PORT`
      : e.code === 'EACCES'
        ? `inspector port ${port} needs privileges this process does not have: choose a port above 1023`
        : `inspector bridge cannot listen on ${host}:${port}: ${e.message}`;
  return new Error(why, { cause: e });
}

function answer(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(errorBody(code, message)));
}

function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify(errorBody(code, message));
  const head = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}`, 'Connection: close', 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`];
  if (status === 401) head.push('WWW-Authenticate: Bearer realm="troupe"');
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

/** JSON that survives cycles and functions (actor refs inside snapshots become `{id, sessionId}`). */
function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'function') return undefined;
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[Circular]';
      seen.add(v);
      if ('sessionId' in v && 'send' in v) return { id: (v as { id?: unknown }).id, sessionId: (v as { sessionId: unknown }).sessionId };
    }
    return v;
  });
}

/**
 * The library's bridge page, with two changes: it connects back to the address it was loaded from
 * (query included, so `?access_token=` reaches the upgrade) instead of `ws://localhost:PORT`, and the
 * frame sends no Referer.
 */
const BRIDGE_PAGE = `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Stately Inspector · Troupe</title>
  <style>* { margin: 0; padding: 0; } html, body { height: 100%; } iframe { width: 100%; height: 100%; border: none; }</style>
</head>
<body>
  <iframe id="inspector" src="${INSPECTOR_URL}" referrerpolicy="no-referrer"></iframe>
  <script>
    const iframe = document.getElementById('inspector');
    const buffer = [];
    let connected = false;
    window.addEventListener('message', (e) => {
      if (e.data && e.data.type === '@statelyai.connected') {
        connected = true;
        buffer.forEach((event) => iframe.contentWindow.postMessage(event, '*'));
        buffer.length = 0;
      }
    });
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/' + location.search);
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (connected) iframe.contentWindow.postMessage(data, '*');
      else buffer.push(data);
    };
  </script>
</body>
</html>`;
