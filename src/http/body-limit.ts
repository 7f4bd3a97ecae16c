/**
 * Hono's `bodyLimit`, with one more refusal: a body that cannot be read to its end. Hono reads a
 * body without Content-Length (chunked) itself to count it, and when the client goes away or
 * sends a broken chunk that read throws — which would reach `onError` as a 500 ("unhandled
 * error" in the log) for what is the client's fault. Errors of the routes after it pass through.
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { TroupeError, coerceError } from '../errors.ts';
import { errorBody } from './errors.ts';

export function limitBody(maxSize: number): MiddlewareHandler {
  const inner = bodyLimit({
    maxSize,
    onError: (c) => c.json(errorBody('payload_too_large', `the body is larger than ${maxSize} bytes`), 413),
  });
  return async function limitBodyMiddleware(c, next) {
    let passed = false;
    try {
      return await inner(c, async () => {
        passed = true;
        await next();
      });
    } catch (e) {
      if (passed) throw e;
      throw new TroupeError('validation_failed', 'the request body could not be read to its end', [{ path: '(body)', message: coerceError(e).message }]);
    }
  };
}
