/**
 * One error envelope for every failure: `{"error":{"code","message","details"?}}`. Typed
 * `TroupeError`s map to their status; anything else is a 500 that never leaks a stack trace.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isLeaseLost } from '../actors/runtime/leases.ts';
import { isTransientDbError } from '../db/retry.ts';
import { TroupeError, coerceError, type ErrorCode } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/**
 * A refusal at the edge whose code belongs to the HTTP layer, not to the domain's `ErrorCode`s:
 * `forbidden_host`, `forbidden_origin` (403), `unsupported_media_type` (415), `too_many_streams`
 * (503, with `Retry-After`). Thrown by middleware and routes, answered by `onError`.
 */
export class HttpRefusal extends Error {
  override name = 'HttpRefusal';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

export function errorResponse(c: Context, status: ContentfulStatusCode, code: string, message: string, details?: unknown): Response {
  return c.json(errorBody(code, message, details), status);
}

const HTTP_CODES: Partial<Record<number, ErrorCode>> = {
  400: 'validation_failed',
  401: 'unauthorized',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  422: 'unprocessable',
};

/** The app's `onError`. */
export function handleError(logger: Logger) {
  return function onError(thrown: unknown, c: Context): Response {
    if (thrown instanceof TroupeError) {
      return errorResponse(c, thrown.status as ContentfulStatusCode, thrown.code, thrown.message, thrown.details);
    }
    if (thrown instanceof HttpRefusal) {
      for (const [name, value] of Object.entries(thrown.headers)) c.header(name, value);
      return errorResponse(c, thrown.status, thrown.code, thrown.message);
    }
    if (thrown instanceof HTTPException && thrown.status < 500) {
      const code = HTTP_CODES[thrown.status] ?? 'validation_failed';
      return errorResponse(c, thrown.status, code, thrown.message || 'bad request');
    }
    if (isLeaseLost(thrown)) {
      // The run was taken over while this request acted on it here: a lost race.
      return errorResponse(c, 409, 'conflict', 'the run moved to another troupe process meanwhile: send the request again');
    }
    const err = coerceError(thrown);
    if (isTransientDbError(err)) {
      // Postgres restarting, a connection lost: nothing is wrong with the request; the write
      // did not happen (or, if its acknowledgement was lost, a repeat finds it done).
      logger.warn({ err, reqId: c.get('requestId'), path: c.req.path }, 'database unavailable');
      c.header('Retry-After', '1');
      return errorResponse(c, 503, 'unavailable', 'the database is briefly unavailable: try again shortly');
    }
    logger.error({ err, reqId: c.get('requestId'), path: c.req.path }, 'unhandled error');
    return errorResponse(c, 500, 'internal', 'internal error');
  };
}
