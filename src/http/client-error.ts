/**
 * Requests Node's HTTP parser refuses before the app sees them — bytes that are not allowed in a
 * request target, a Content-Length that is not a number or disagrees with what follows, a body
 * that ends before its Content-Length, an unknown method, oversized headers — answered in the
 * contract's error envelope rather than Node's bare `400 Bad Request` with no body. Install with
 * `server.on('clientError', answerClientError)`.
 */
import type { Duplex } from 'node:stream';
import { errorBody } from './errors.ts';

interface ParserRefusal {
  status: number;
  reason: string;
  code: string;
  message: string;
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
  if (err.code !== 'ECONNRESET' && socket.writable && !socket._httpMessage?.headersSent) {
    const r = refusalFor(err);
    const body = JSON.stringify(errorBody(r.code, r.message));
    socket.write(`HTTP/1.1 ${r.status} ${r.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}
