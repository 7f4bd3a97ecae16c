/**
 * Local exposure (CONTRACT §2 "Exposure"): who may drive this API besides the person at this machine.
 *
 * Threats, and the check that answers each:
 *
 * 1. DNS rebinding. Without TROUPE_API_TOKEN the API trusts whoever reaches it, and only this
 *    machine reaches a loopback listener — but a web page can re-resolve its own name to 127.0.0.1
 *    and then read and write the API as "same origin". Its requests still carry `Host: evil.example`:
 *    without a token, a Host that is not a loopback name or address (or the configured `--host`)
 *    → 403 `forbidden_host`. With a token there is nothing to steal by rebinding, and remote
 *    clients legitimately use other names, so the check is off.
 * 2. Cross-site requests. Any page can make the browser send a "simple" request — a bodyless POST,
 *    a form — to 127.0.0.1 without a preflight; it cannot read the answer, but the run starts.
 *    A state-changing request whose `Origin` is not our own (or, without `Origin`, whose
 *    `Sec-Fetch-Site` says another site) → 403 `forbidden_origin`, token or not.
 * 3. Bodies a form or `text/plain` can carry. A POST/PATCH/PUT body that is not JSON → 415, so no
 *    route ever reads input a simple request could send. (`readJsonBody` in validate.ts: also
 *    malformed JSON and NUL inside the body, 400.)
 * 4. NUL in the URL → 400: path parameters and query values end up in git arguments, file paths
 *    and Postgres `text`, where a NUL truncates or fails. So does percent-encoding that does not
 *    decode to UTF-8. Header values need no check: Node's HTTP
 *    parser (and the Fetch `Headers` class) refuse NUL in them before we see the request.
 *
 * Stream count limits (too many SSE clients) live with the streams: routes/streams.ts.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { TroupeError } from '../errors.ts';
import { HttpRefusal } from './errors.ts';
import { readJsonBody } from './validate.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const BODY_METHODS = new Set(['POST', 'PATCH', 'PUT']);
const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);

/** `host[:port]` → the host part, lower-cased, brackets kept for IPv6 (`[::1]`); undefined when malformed. */
function hostname(authority: string): string | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(authority.trim());
  return m ? m[1]!.toLowerCase() : undefined;
}

function isLoopbackName(name: string): boolean {
  if (name === 'localhost' || name === '[::1]') return true;
  const quad = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return quad !== null && quad.slice(1).every((octet) => Number(octet) <= 255);
}

/**
 * Whether a `Host` value names this machine: `localhost`, `127.0.0.0/8`, `[::1]` (any port), or the
 * configured listen host. A wildcard listen host (`0.0.0.0`) is not a name anyone should reach us by
 * (browsers used to route `http://0.0.0.0` to this machine).
 */
export function isAllowedHost(authority: string, configuredHost?: string): boolean {
  const name = hostname(authority);
  if (name === undefined) return false;
  if (isLoopbackName(name)) return true;
  if (configuredHost === undefined || WILDCARD.has(configuredHost)) return false;
  const configured = configuredHost.includes(':') && !configuredHost.startsWith('[') ? `[${configuredHost}]` : configuredHost;
  return name === configured.toLowerCase();
}

/**
 * The authority the client addressed. A missing `Host` (HTTP/1.0; Node refuses HTTP/1.1 without one)
 * falls back to the URL, which the Node adapter builds from the listen host: browsers always send
 * `Host`, so a request without one is not a rebinding page's.
 */
export function authorityOf(c: Context): string {
  return c.req.header('host') ?? new URL(c.req.url).host;
}

/** Same origin as the request's own authority. Either scheme: a TLS proxy in front keeps the Host but makes the page `https:`. */
export function isSameOrigin(origin: string, authority: string): boolean {
  if (origin === 'null') return false; // sandboxed frames, file:// pages, redirects across sites
  try {
    const theirs = new URL(origin);
    if (theirs.protocol !== 'http:' && theirs.protocol !== 'https:') return false;
    return theirs.origin === new URL(`${theirs.protocol}//${authority}`).origin;
  } catch {
    return false; // unparsable: foreign
  }
}

/**
 * Threat 1. Runs on every route, `/health` and `/` included: it is not authentication (the
 * contract's "no auth" for `/health` stands), and a rebinding page has no business reading even
 * the version. Install only without a token.
 */
export function refuseForeignHost(configuredHost?: string): MiddlewareHandler {
  return async function refuseForeignHostMiddleware(c, next) {
    const authority = authorityOf(c);
    if (!isAllowedHost(authority, configuredHost)) {
      throw new HttpRefusal(403, 'forbidden_host', `this service answers only to a loopback host name without TROUPE_API_TOKEN; Host ${JSON.stringify(authority.slice(0, 100))} is not one`);
    }
    await next();
  };
}

/** Threat 2. Safe methods pass: without CORS headers a foreign page cannot read their answers. */
export const refuseCrossSite: MiddlewareHandler = async function refuseCrossSiteMiddleware(c, next) {
  if (!SAFE_METHODS.has(c.req.method)) {
    const origin = c.req.header('origin');
    const site = c.req.header('sec-fetch-site');
    const foreign = origin !== undefined ? !isSameOrigin(origin, authorityOf(c)) : site !== undefined && site !== 'same-origin' && site !== 'none';
    if (foreign) {
      throw new HttpRefusal(403, 'forbidden_origin', `a ${c.req.method} from another origin (${origin ?? `Sec-Fetch-Site: ${site}`}) is refused`);
    }
  }
  await next();
};

/** Threat 3: mount after the body limit (it reads the body, which Hono caches for the route). */
export const refuseNonJsonBody: MiddlewareHandler = async function refuseNonJsonBodyMiddleware(c, next) {
  if (BODY_METHODS.has(c.req.method)) await readJsonBody(c);
  await next();
};

/**
 * Threat 4, and malformed escapes beside it: a path segment or query part whose percent-encoding
 * does not decode (a lone `%`, `%zz`, bytes that are not UTF-8 such as `%ff` or an encoded
 * surrogate `%ed%a0%80`) → 400 too. Hono would pass such a segment on undecoded, where it can
 * only miss (404) or, worse, be taken for a different name than the one the client meant.
 */
export const refuseNulInUrl: MiddlewareHandler = async function refuseNulInUrlMiddleware(c, next) {
  const url = new URL(c.req.url);
  const details: { path: string; message: string }[] = [];
  // The URL parser percent-encodes a raw NUL, so `%00` is the only spelling left in a path.
  if (/%00/.test(url.pathname)) details.push({ path: '(path)', message: 'must not contain NUL' });
  else if (url.pathname.split('/').some((segment) => decoded(segment) === undefined)) details.push({ path: '(path)', message: 'malformed percent-encoding (not UTF-8)' });
  for (const part of url.search.slice(1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decoded(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decoded(part.slice(eq + 1));
    const label = `query.${name === undefined ? '(name)' : printable(name)}`;
    if (name === undefined || value === undefined) details.push({ path: label, message: 'malformed percent-encoding (not UTF-8)' });
    else if (name.includes('\0') || value.includes('\0')) details.push({ path: label, message: 'must not contain NUL' });
    if (details.length >= 20) break;
  }
  if (details.length > 0) throw new TroupeError('validation_failed', `invalid URL: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
  await next();
};

/** A URL component decoded (`+` is a space in a query), or undefined when its escapes do not decode to UTF-8. */
function decoded(component: string): string | undefined {
  try {
    return decodeURIComponent(component.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

function printable(name: string): string {
  const shown = name.replaceAll('\0', '\\u0000');
  return shown.length > 100 ? `${shown.slice(0, 100)}…` : shown;
}
