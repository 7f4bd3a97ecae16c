/**
 * `GET /`: the web dashboard, and `GET /assets/*`: its files. The page is built by `npm run
 * build:web` (vite, from `web/`) into `dist/web/`, found from the package root (never the working
 * directory), and read at request time, so a rebuild needs no restart. Hashed assets are cached for
 * good (and gzipped once per name when the client accepts it: the layout library is most of the
 * bytes); `index.html` never is, so a new build is picked up at once. Without a build `GET /` answers
 * 503 saying how to make one. The page's CSP allows this origin only: no inline script, nothing
 * fetched from elsewhere (the dashboard works with no network beyond the service). Auth is the
 * API's: the page itself is public, it asks for the token when `/api` answers 401.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { Context, Hono } from 'hono';
import { packagePath } from '../package-files.ts';
import { errorBody } from './errors.ts';

const WEB_DIR = packagePath('dist', 'web');
const ASSETS_DIR = path.join(WEB_DIR, 'assets');

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

const gzip = promisify(gzipCb);
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Worth gzipping: text, not already compressed formats. */
const TEXTUAL = new Set(['.js', '.css', '.map', '.json', '.svg']);
/** Gzipped assets by name: a name is a content hash, so an entry never goes stale. */
const gzipped = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

/** A file name vite writes into `assets/`: no separators, no leading dot, a known extension. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Mounts the dashboard's page and assets on `app`. */
export function mountDashboard(app: Hono): void {
  app.get('/', async (c) => {
    const html = await readOrNull(path.join(WEB_DIR, 'index.html'));
    if (html === null) {
      return c.json(errorBody('dashboard_not_built', 'the web dashboard is not built: run `npm run build:web` (the JSON API under /api works without it)'), 503);
    }
    return c.body(html.toString('utf8'), 200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache', 'content-security-policy': CSP });
  });
  app.get('/assets/:name', async (c) => serveAsset(c, c.req.param('name')));
}

async function serveAsset(c: Context, name: string): Promise<Response> {
  const type = TYPES[path.extname(name)];
  const bytes = ASSET_NAME.test(name) && type ? await readOrNull(path.join(ASSETS_DIR, name)) : null;
  if (bytes === null) return c.json(errorBody('not_found', `no dashboard asset ${name}`), 404);
  const headers: Record<string, string> = { 'content-type': type!, 'cache-control': IMMUTABLE };
  if (!TEXTUAL.has(path.extname(name))) return c.body(new Uint8Array(bytes), 200, headers);
  headers.vary = 'Accept-Encoding';
  if (!/\bgzip\b/i.test(c.req.header('accept-encoding') ?? '')) return c.body(new Uint8Array(bytes), 200, headers);
  let packed = gzipped.get(name);
  if (!packed) {
    packed = gzip(bytes).then((b) => new Uint8Array(b));
    gzipped.set(name, packed);
    packed.catch(() => gzipped.delete(name));
  }
  return c.body(await packed, 200, { ...headers, 'content-encoding': 'gzip' });
}

async function readOrNull(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'EISDIR') return null;
    throw e;
  }
}
