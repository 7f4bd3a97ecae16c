/**
 * `GET /openapi.json` and `GET /docs`: the OpenAPI document of every route, and the API reference
 * page served from bundled files. Not built yet: both answer 501 with a message.
 */
import type { Hono } from 'hono';
import { errorBody } from './errors.ts';

/** Mounts the document and the reference page on `app`, after every other route is registered. */
export function mountDocs(app: Hono): void {
  for (const [route, what] of [['/openapi.json', 'the OpenAPI document'], ['/docs', 'the API reference page']] as const) {
    app.get(route, (c) => c.json(errorBody('not_implemented', `${what} is not built yet: use the JSON API under /api (see the README)`), 501));
  }
}
