/**
 * `GET /docs`: the API reference, swagger-ui rendering `/openapi.json`, from files this service
 * serves itself (no CDN, no request to any other origin: swagger-ui's online validator badge is
 * off). The scripts are files, not inline, so a Content-Security-Policy without `unsafe-inline`
 * still lets the page run. The swagger-ui files are read from the installed `swagger-ui-dist`
 * (found through module resolution, not the working directory) on first request and kept.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Context, Hono } from 'hono';

const ASSETS = '/docs/assets';

/** The page's own script: where the document is comes from the page (`data-url`), nothing is configured twice. */
const INIT_SCRIPT = `'use strict';
window.addEventListener('DOMContentLoaded', function () {
  var root = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Troupe API reference</title>
<link rel="stylesheet" href="${ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="${ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-url="/openapi.json"></div>
<noscript>This page needs JavaScript; the document itself is <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="${ASSETS}/swagger-ui-bundle.js"></script>
<script src="${ASSETS}/docs-init.js"></script>
</body>
</html>
`;

/** What `/docs/assets/:name` serves: a file of swagger-ui-dist, or the init script above. */
const FILES: Record<string, { type: string; file?: string; text?: string }> = {
  'swagger-ui.css': { type: 'text/css; charset=utf-8', file: 'swagger-ui.css' },
  'swagger-ui.css.map': { type: 'application/json', file: 'swagger-ui.css.map' },
  'swagger-ui-bundle.js': { type: 'text/javascript; charset=utf-8', file: 'swagger-ui-bundle.js' },
  'swagger-ui-bundle.js.map': { type: 'application/json', file: 'swagger-ui-bundle.js.map' },
  'favicon-32x32.png': { type: 'image/png', file: 'favicon-32x32.png' },
  'docs-init.js': { type: 'text/javascript; charset=utf-8', text: INIT_SCRIPT },
};

interface Asset {
  body: Uint8Array;
  etag: string;
}

const loaded = new Map<string, Promise<Asset>>();
let distDir: string | undefined;

function load(name: string): Promise<Asset> {
  let asset = loaded.get(name);
  if (!asset) {
    asset = read(FILES[name]!).catch((e: unknown) => {
      loaded.delete(name);
      throw e;
    });
    loaded.set(name, asset);
  }
  return asset;
}

async function read(entry: { file?: string; text?: string }): Promise<Asset> {
  distDir ??= path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const body = entry.text !== undefined ? new TextEncoder().encode(entry.text) : new Uint8Array(await readFile(path.join(distDir, entry.file!)));
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Mounts `/docs` and its assets. */
export function mountReferencePage(app: Hono): void {
  app.get('/docs', (c) => {
    c.header('Cache-Control', 'no-cache');
    return c.html(PAGE);
  });
  app.get(`${ASSETS}/:name`, async (c) => {
    const name = c.req.param('name');
    if (!Object.hasOwn(FILES, name)) return c.notFound();
    return answer(c, FILES[name]!.type, await load(name));
  });
}

/** The asset, or 304 when the client holds it already; an hour before it asks again. */
function answer(c: Context, type: string, asset: Asset): Response {
  c.header('ETag', asset.etag);
  c.header('Cache-Control', 'public, max-age=3600');
  const held = c.req.header('if-none-match');
  if (held?.split(',').some((tag) => tag.trim() === asset.etag)) return c.body(null, 304);
  c.header('Content-Type', type);
  return c.body(asset.body as Uint8Array<ArrayBuffer>, 200);
}
