/**
 * The Hono app: `createApp({ runtime, bus, … })`. A thin core: middleware (request ids, access
 * logs, secure headers, local exposure checks, body limit, bearer auth), the routes of the README's "HTTP API",
 * one error envelope.
 */
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import type { Runtime } from '../actors/runtime/runtime.ts';
import type { EventBus } from '../events/bus.ts';
import type { Logger } from '../logger.ts';
import { limitBody } from './body-limit.ts';
import { errorBody, handleError } from './errors.ts';
import { mountDashboard } from './dashboard.ts';
import { refuseCrossSite, refuseForeignHost, refuseNonJsonBody, refuseNulInUrl } from './exposure.ts';
import { accessLog, bearerAuth } from './middleware.ts';
import { mountDocs } from './openapi.ts';
import { projectRoutes } from './routes/projects.ts';
import { streamRoutes } from './routes/streams.ts';
import type { SseChannel, SseOptions } from './sse.ts';

export interface AppOptions {
  runtime: Runtime;
  bus: EventBus;
  logger: Logger;
  version: string;
  /** When set, every `/api/*` route needs `Authorization: Bearer <token>`. */
  apiToken?: string | undefined;
  /** Largest request body (default 4 MiB). */
  bodyLimitBytes?: number;
  sse?: SseOptions;
  /** The configured listen host: without a token, a `Host` naming it is accepted besides the loopback names. */
  host?: string | undefined;
  /** SSE streams open at once across every stream route (default 256); beyond it 503. */
  maxStreams?: number | undefined;
}

export interface App {
  app: Hono;
  /** Ends every open event stream (shutdown). */
  closeStreams(): void;
}

/** SSE routes, where `?access_token=` is accepted because EventSource cannot send headers. */
const STREAM_PATH = /^\/api\/(events|projects\/[^/]+\/(events|inspect))$/;

export function createApp(o: AppOptions): App {
  const streams = new Set<SseChannel>();
  const app = new Hono();

  app.use(requestId());
  app.use(accessLog(o.logger));
  app.use(secureHeaders());
  // Exposure checks first, on every route (see exposure.ts for the threats they answer).
  if (!o.apiToken) app.use(refuseForeignHost(o.host));
  app.use(refuseCrossSite);
  app.use(refuseNulInUrl);

  app.get('/health', async (c) => {
    const db = await o.runtime.health();
    return c.json({ status: db ? 'ok' : 'error', db: db ? 'ok' : 'error', version: o.version }, db ? 200 : 503);
  });

  mountDashboard(app);

  app.use('/api/*', limitBody(o.bodyLimitBytes ?? 4 * 1024 * 1024));
  if (o.apiToken) app.use('/api/*', bearerAuth(o.apiToken, (path) => STREAM_PATH.test(path)));
  app.use('/api/*', refuseNonJsonBody);

  app.route('/api/projects', projectRoutes(o.runtime));
  app.route('/api', streamRoutes({ runtime: o.runtime, bus: o.bus, sse: o.sse, streams, maxStreams: o.maxStreams ?? 256 }));
  // Last: the document describes every route registered above.
  mountDocs(app, o.version);

  app.notFound((c) => c.json(errorBody('not_found', `no route ${c.req.method} ${c.req.path}`), 404));
  app.onError(handleError(o.logger));

  return {
    app,
    closeStreams() {
      for (const channel of [...streams]) channel.close();
    },
  };
}
