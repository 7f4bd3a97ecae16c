/**
 * Request-scoped middleware: structured access logs (no secrets) and bearer-token auth.
 */
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Logger } from '../logger.ts';
import { errorBody } from './errors.ts';

/** One log line per request: id, method, path (never the query: it may carry `access_token`), status, time. */
export function accessLog(logger: Logger): MiddlewareHandler {
  return async function accessLogMiddleware(c, next) {
    const started = performance.now();
    await next();
    logger.info(
      {
        reqId: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(performance.now() - started),
      },
      'request',
    );
  };
}

/** Constant-time comparison of a presented token with the configured one. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * `Authorization: Bearer <token>` on every `/api/*` route; SSE routes (EventSource cannot send
 * headers) also accept `?access_token=`.
 */
export function bearerAuth(token: string, isStream: (path: string) => boolean): MiddlewareHandler {
  return async function bearerAuthMiddleware(c, next) {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    const query = isStream(c.req.path) ? c.req.query('access_token') : undefined;
    const given = match?.[1] ?? query;
    if (given === undefined || !sameSecret(given, token)) {
      c.header('WWW-Authenticate', 'Bearer realm="troupe"');
      return c.json(errorBody('unauthorized', given === undefined ? 'missing bearer token' : 'invalid bearer token'), 401);
    }
    await next();
  };
}
