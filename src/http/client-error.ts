/**
 * Requests Node's HTTP parser refuses before the app sees them — bytes that are not allowed in a
 * request target, a Content-Length that is not a number or disagrees with what follows, a body
 * that ends before its Content-Length, an unknown method, oversized headers — answered in the
 * contract's error envelope rather than Node's bare `400 Bad Request` with no body. Install with
 * `server.on('clientError', answerClientError)`; and `server.on('connect', refuseConnect)`, since
 * without a `connect` listener Node drops a CONNECT request's connection without a word.
 */
import type { Duplex } from 'node:stream';
import { errorBody } from './errors.ts';

interface ParserRefusal {
  status: number;
  reason: string;
  code: string;
  message: string;
}

function writeRefusal(socket: Duplex, r: ParserRefusal, extraHeaders = ''): void {
  const body = JSON.stringify(errorBody(r.code, r.message));
  socket.write(`HTTP/1.1 ${r.status} ${r.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`);
}

const REFUSALS: Record<string, ParserRefusal> = {
  HPE_HEADER_OVERFLOW: { status: 431, reason: 'Request Header Fields Too Large', code: 'headers_too_large', message: 'the request headers are too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, reason: 'Request Timeout', code: 'request_timeout', message: 'the request did not arrive in time' },
  HPE_INVALID_EOF_STATE: { status: 400, reason: 'Bad Request', code: 'bad_request', message: 'the connection ended before the request did (a body shorter than its Content-Length?)' },
};

function refusalFor(err: NodeJS.ErrnoException): ParserRefusal {
  const known = err.code === undefined ? undefined : REFUSALS[err.code];
  return known ?? { status: 400, reason: 'Bad Request', code: 'bad_request', message: `malformed HTTP request${err.code?.startsWith('HPE_') ? ` (${err.code})` : ''}` };
}

/**
 * The server's `clientError` listener. Like Node's default it answers only when no response on
 * this connection has started (one whose head is out cannot be replaced; Node's own check reads
 * the same `_httpMessage`), then closes the connection.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex & { _httpMessage?: { headersSent?: boolean } | null }): void {
  if (err.code !== 'ECONNRESET' && socket.writable && !socket._httpMessage?.headersSent) writeRefusal(socket, refusalFor(err));
  socket.destroy();
}

/** The server's `connect` listener: this service is no proxy, so CONNECT is 405 (the socket is ours alone here: Node hands it over). */
export function refuseConnect(_req: unknown, socket: Duplex): void {
  if (socket.writable) {
    writeRefusal(socket, { status: 405, reason: 'Method Not Allowed', code: 'method_not_allowed', message: 'CONNECT is not supported: this service is not a proxy' }, 'Allow: GET, HEAD, POST, PATCH, DELETE\r\n');
  }
  socket.end();
}
