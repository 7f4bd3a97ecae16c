/**
 * Validation at the edge: request bodies are JSON (415 otherwise) without NUL, zod schemas through
 * `@hono/zod-validator`, failures as 400 with one `details` entry per offending field.
 */
import { zValidator } from '@hono/zod-validator';
import type { Context, MiddlewareHandler } from 'hono';
import type { z, ZodType } from 'zod';
import { issuesOf } from '../domain/inputs.ts';
import { TroupeError } from '../errors.ts';
import { HttpRefusal } from './errors.ts';

type Target = 'json' | 'query' | 'param';

const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i;

/** `application/json` or a `+json` type; parameters (`; charset=utf-8`) do not matter. */
export function isJsonType(contentType: string | undefined): boolean {
  return JSON_TYPE.test((contentType ?? '').split(';')[0]!.trim());
}

/**
 * The request's body, parsed: `undefined` when there is none. "None" is decided by the bytes, not
 * by headers (a bodiless `curl -X POST` sends no Content-Length at all). A body that is present
 * must be JSON (else 415), well-formed (else 400: the validator would otherwise see `{}` and
 * report the wrong fields), and free of NUL in every string and key (else 400 naming the field:
 * a NUL cuts strings short in C code — git, the file system, Postgres `text` refuses it outright).
 * Hono caches the text, so routes and middleware may all call this.
 */
export async function readJsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return undefined;
  const type = c.req.header('content-type');
  if (!isJsonType(type)) {
    throw new HttpRefusal(415, 'unsupported_media_type', `the body must be JSON (Content-Type: application/json), not ${type?.split(';')[0]!.trim() || '(none)'}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new TroupeError('validation_failed', 'Malformed JSON in request body', [{ path: '(body)', message: 'not valid JSON' }]);
  }
  // In JSON text a NUL can only be written as the escape \u0000: without one, there is nothing to walk.
  if (text.includes('\\u0000')) {
    const details = nulFields(body);
    if (details.length > 0) throw new TroupeError('validation_failed', `invalid body: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
  }
  return body;
}

const MAX_NUL_DETAILS = 20;

/** Every string value or key containing NUL, by field path (`tasks.0.description`). Iterative: a deep body must not overflow the stack. */
export function nulFields(value: unknown): { path: string; message: string }[] {
  const found: { path: string; message: string }[] = [];
  const stack: [unknown, string[]][] = [[value, []]];
  while (stack.length > 0 && found.length < MAX_NUL_DETAILS) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\0')) found.push({ path: at.join('.') || '(body)', message: 'must not contain NUL' });
    } else if (typeof v === 'object' && v !== null) {
      const entries: [string, unknown][] = Array.isArray(v) ? (v as unknown[]).map((item, i) => [String(i), item]) : Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, item] = entries[i]!;
        if (key.includes('\0')) found.push({ path: [...at, key.replaceAll('\0', '\\u0000')].join('.'), message: 'field name must not contain NUL' });
        else stack.push([item, [...at, key]]);
      }
    }
  }
  return found;
}

/** Route middleware: a body that is present must be JSON, well-formed and NUL-free (see `readJsonBody`). */
export const requireJson: MiddlewareHandler = async function requireJson(c, next) {
  await readJsonBody(c);
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
  const raw = (await readJsonBody(c)) ?? {};
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const details = issuesOf(parsed.error);
    throw new TroupeError('validation_failed', `invalid body: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
  }
  return parsed.data;
}
