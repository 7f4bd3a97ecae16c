/**
 * Validation at the edge: request bodies are UTF-8 JSON (415 otherwise) without NUL or lone surrogates, zod schemas through
 * `@hono/zod-validator`, failures as 400 with one `details` entry per offending field.
 */
import { zValidator } from '@hono/zod-validator';
import type { Context, MiddlewareHandler } from 'hono';
import { resolver, uniqueSymbol } from 'hono-openapi';
import type { z, ZodType } from 'zod';
import { issuesOf } from '../domain/inputs.ts';
import { TroupeError, coerceError } from '../errors.ts';
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
 * must be JSON (else 415) in UTF-8 (a `charset` other than UTF-8 → 415; bytes that are not UTF-8
 * → 400: decoding them leniently would store U+FFFD where the client sent something else),
 * well-formed (else 400: the validator would otherwise see `{}` and report the wrong fields), no
 * deeper than `MAX_DEPTH`, and free of NUL and of lone surrogates in every string and key (else
 * 400 naming the field: a NUL cuts strings short in C code — git, the file system — and Postgres
 * refuses it in `text`; a lone surrogate `\ud800` has no UTF-8 form, so Postgres refuses it too).
 * Read once per request (middleware and routes may all call this); Hono caches the bytes, so a
 * later `c.req.json()` parses the same, checked text.
 */
export function readJsonBody(c: Context): Promise<unknown> {
  let read = bodies.get(c.req.raw);
  if (!read) {
    read = parseBody(c);
    bodies.set(c.req.raw, read);
  }
  return read;
}

const bodies = new WeakMap<Request, Promise<unknown>>();
/** JSON is UTF-8 (RFC 8259); ASCII is a subset of it. */
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

async function parseBody(c: Context): Promise<unknown> {
  let bytes: ArrayBuffer;
  try {
    bytes = await c.req.arrayBuffer();
  } catch (e) {
    // The client went away mid-body (or sent a broken chunked encoding): nothing to answer, and no fault of ours.
    throw new TroupeError('validation_failed', 'the request body could not be read to its end', [{ path: '(body)', message: coerceError(e).message }]);
  }
  if (bytes.byteLength === 0) return undefined;
  const type = c.req.header('content-type');
  if (!isJsonType(type)) {
    // Only whitespace is no body either; anything else needs the type.
    if (/^[\s]*$/.test(Buffer.from(bytes).toString('latin1'))) return undefined;
    throw new HttpRefusal(415, 'unsupported_media_type', `the body must be JSON (Content-Type: application/json), not ${type?.split(';')[0]!.trim() || '(none)'}`);
  }
  const charset = charsetOf(type!);
  if (charset !== undefined && !UTF8_CHARSETS.has(charset)) {
    throw new HttpRefusal(415, 'unsupported_media_type', `the body must be UTF-8 JSON, not charset ${JSON.stringify(charset.slice(0, 40))}`);
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new TroupeError('validation_failed', 'the request body is not valid UTF-8', [{ path: '(body)', message: 'not valid UTF-8' }]);
  }
  if (text.trim() === '') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new TroupeError('validation_failed', 'Malformed JSON in request body', [{ path: '(body)', message: 'not valid JSON' }]);
  }
  const details = badFields(body);
  if (details.length > 0) throw new TroupeError('validation_failed', `invalid body: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
  return body;
}

/** The `charset` parameter of a media type, lower-cased and unquoted; undefined without one. */
function charsetOf(contentType: string): string | undefined {
  const m = /;\s*charset\s*=\s*("?)([^";]*)\1\s*(?:;|$)/i.exec(contentType);
  return m ? m[2]!.trim().toLowerCase() : undefined;
}

const MAX_DETAILS = 20;
/** Deeper than any body a route takes (a create body is four levels): refused before a schema or a driver recurses into it. */
export const MAX_DEPTH = 32;
const MAX_PATH_CHARS = 200;
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Why a string may not come in, or undefined. With the `u` flag a surrogate pair is one code point, so only a lone half matches. */
export function badString(s: string): string | undefined {
  if (s.includes('\0')) return 'must not contain NUL';
  if (LONE_SURROGATE.test(s)) return 'must not contain a lone surrogate (not valid Unicode)';
  return undefined;
}

/**
 * Every string value or key that `badString` refuses, by field path (`tasks.0.description`), and
 * nesting beyond `MAX_DEPTH`. Iterative, and a path is spelled out only for a finding: a deep body
 * must neither overflow the stack nor cost time quadratic in its depth.
 */
export function badFields(value: unknown): { path: string; message: string }[] {
  const found: { path: string; message: string }[] = [];
  // Each node keeps its parent and its key, so a path is built only when it is reported.
  const nodes: { parent: number; key: string }[] = [{ parent: -1, key: '' }];
  const stack: [unknown, number, number][] = [[value, 0, 0]];
  const pathOf = (node: number, key?: string): string => {
    const keys: string[] = key === undefined ? [] : [key];
    for (let n = node; n > 0; n = nodes[n]!.parent) keys.push(nodes[n]!.key);
    const path = keys.reverse().join('.') || '(body)';
    return path.length > MAX_PATH_CHARS ? `${path.slice(0, MAX_PATH_CHARS)}…` : path;
  };
  while (stack.length > 0 && found.length < MAX_DETAILS) {
    const [v, node, depth] = stack.pop()!;
    if (typeof v === 'string') {
      const why = badString(v);
      if (why) found.push({ path: pathOf(node), message: why });
    } else if (typeof v === 'object' && v !== null) {
      if (depth >= MAX_DEPTH) {
        found.push({ path: pathOf(node), message: `nested deeper than ${MAX_DEPTH} levels` });
        continue;
      }
      const entries: [string, unknown][] = Array.isArray(v) ? (v as unknown[]).map((item, i) => [String(i), item]) : Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, item] = entries[i]!;
        const why = badString(key);
        if (why) {
          found.push({ path: pathOf(node, printable(key)), message: `field name ${why}` });
          continue;
        }
        nodes.push({ parent: node, key });
        stack.push([item, nodes.length - 1, depth + 1]);
      }
    }
  }
  return found;
}

/** A key as it may be shown in `details`: NUL and lone surrogates spelled as JSON escapes. */
function printable(key: string): string {
  return key.replace(/\0|\p{Surrogate}/gu, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Route middleware: a body that is present must be UTF-8 JSON, well-formed, not too deep, without NUL or lone surrogates (see `readJsonBody`). */
export const requireJson: MiddlewareHandler = async function requireJson(c, next) {
  await readJsonBody(c);
  await next();
};

/**
 * `zValidator` with the error envelope. The middleware carries its schema the way `hono-openapi`
 * reads it, so `/openapi.json` describes each body, query and path parameter with the very schema
 * that validates it.
 */
export function valid<T extends ZodType>(target: Target, schema: T) {
  const middleware = zValidator(target, schema, (result) => {
    if (!result.success) {
      const details = issuesOf(result.error as unknown as Parameters<typeof issuesOf>[0]);
      throw new TroupeError('validation_failed', `invalid ${target === 'json' ? 'body' : target}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
    }
  });
  return Object.assign(middleware, { [uniqueSymbol]: { target, ...resolver(schema) } });
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
