/**
 * Validation at the edge: zod schemas through `@hono/zod-validator`, failures as 400 with one
 * `details` entry per offending field.
 */
import { zValidator } from '@hono/zod-validator';
import type { Context, MiddlewareHandler } from 'hono';
import type { z, ZodType } from 'zod';
import { issuesOf } from '../domain/inputs.ts';
import { TroupeError } from '../errors.ts';

type Target = 'json' | 'query' | 'param';

const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * A body that is present must be JSON, and well-formed: the validator would otherwise see `{}`
 * and report the wrong fields. "Present" is decided by the bytes, not by headers (a bodiless
 * `curl -X POST` sends no Content-Length at all).
 */
export const requireJson: MiddlewareHandler = async function requireJson(c, next) {
  const text = await c.req.text();
  if (text.trim() !== '') {
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim();
    if (!JSON_TYPE.test(type)) {
      throw new TroupeError('validation_failed', 'the body must be JSON (Content-Type: application/json)', [
        { path: '(body)', message: `content type ${type || '(none)'} is not JSON` },
      ]);
    }
    try {
      JSON.parse(text);
    } catch {
      throw new TroupeError('validation_failed', 'Malformed JSON in request body', [{ path: '(body)', message: 'not valid JSON' }]);
    }
  }
  await next();
};

/** `zValidator` with the error envelope. */
export function valid<T extends ZodType>(target: Target, schema: T) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      const details = issuesOf(result.error as unknown as Parameters<typeof issuesOf>[0]);
      throw new TroupeError('validation_failed', `invalid ${target === 'json' ? 'body' : target}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
    }
  });
}

/** A body that may be absent (absent means `{}`), validated like `valid('json', schema)`. */
export async function optionalJson<T extends ZodType>(c: Context, schema: T): Promise<z.output<T>> {
  const text = await c.req.text();
  let raw: unknown = {};
  if (text.trim() !== '') {
    try {
      raw = JSON.parse(text);
    } catch {
      throw new TroupeError('validation_failed', 'Malformed JSON in request body', [{ path: '(body)', message: 'not JSON' }]);
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const details = issuesOf(parsed.error);
    throw new TroupeError('validation_failed', `invalid body: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
  }
  return parsed.data;
}
