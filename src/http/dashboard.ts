/**
 * `GET /`: the web dashboard. Not built yet: it answers 501 with a message.
 */
import type { Hono } from 'hono';
import { errorBody } from './errors.ts';

/** Mounts the dashboard's page and assets on `app`. */
export function mountDashboard(app: Hono): void {
  app.get('/', (c) => c.json(errorBody('not_implemented', 'the web dashboard is not built yet: use the JSON API under /api (see the README)'), 501));
}
