/**
 * Composition root: config → data-dir lock → store (migrated) → event bus → HTTP bound (503
 * `starting`) → runtime (resuming runs) → ready. The only place everything meets. Shutdown is
 * idempotent and two-phase: stop accepting, close the streams, stop the actors (aborting
 * in-flight effects at a persisted point: the runs stay active in the database and resume on the
 * next start), then release the database and, last, the data dir.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { serve } from '@hono/node-server';
import { SANITIZE_OPTIONS } from './actors/runtime/inspection.ts';
import type { Inspector } from './actors/runtime/lead-host.ts';
import { Runtime } from './actors/runtime/runtime.ts';
import { ConfigError, type Config } from './config.ts';
import { lockDataDir } from './datadir-lock.ts';
import { createStore, type Store } from './db/client.ts';
import { coerceError } from './errors.ts';
import { EventBus } from './events/bus.ts';
import { createApp } from './http/app.ts';
import { answerClientError, refuseConnect } from './http/client-error.ts';
import { errorBody } from './http/errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { VERSION } from './package-files.ts';

export { VERSION };

export interface Service {
  readonly url: string;
  readonly port: number;
  readonly runtime: Runtime;
  readonly bus: EventBus;
  /** Idempotent: a second call returns the same promise. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  logger?: Logger;
  /** The Anthropic client (default: the SDK's own, honouring ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL). */
  client?: Anthropic;
  sse?: { heartbeatMs?: number; maxQueuedBytes?: number };
}

/** How long requests in flight may take to finish at shutdown. */
const REQUEST_GRACE_MS = 2_000;

const LOOPBACK = /^(127(\.\d{1,3}){3}|::1|localhost|::ffff:127(\.\d{1,3}){3})$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host.replace(/^\[|\]$/g, ''));
}

/** Opens the configured store: Postgres when DATABASE_URL is set, PGlite under the data dir otherwise. */
export async function openStore(config: Config): Promise<Store> {
  return config.databaseUrl
    ? createStore({ kind: 'postgres', url: config.databaseUrl })
    : createStore({ kind: 'pglite', dataDir: path.join(config.dataDir, 'pgdata') });
}

export async function startService(config: Config, options: ServiceOptions = {}): Promise<Service> {
  const logger = options.logger ?? createLogger(config.logLevel);
  if (!config.apiToken && !isLoopback(config.host)) {
    throw new ConfigError(`refusing to listen on ${config.host} without TROUPE_API_TOKEN: set a token, or listen on 127.0.0.1`);
  }
  // Order matters: the data dir is ours before the database opens (a second process writes
  // nothing), and the port is bound before any run resumes (a busy port resumes nothing).
  const lock = await lockDataDir(config.dataDir);
  const cleanups: (() => Promise<void> | void)[] = [() => lock.release()];
  let server: Server | undefined;
  try {
    const store = await openStore(config);
    cleanups.unshift(() => store.close());
    await store.migrate();
    const bus = new EventBus(store, logger.child({ part: 'bus' }));
    cleanups.unshift(() => bus.stop());
    const inspectors: Inspector[] = [];
    if (config.inspectPort !== undefined) {
      // Loaded only when asked for (it brings a WebSocket server along).
      const { startInspectorBridge } = await import('./http/inspector-bridge.ts');
      const bridge = await startInspectorBridge({
        host: config.host,
        port: config.inspectPort,
        token: config.apiToken,
        logger: logger.child({ part: 'inspector' }),
        inspectorOptions: SANITIZE_OPTIONS,
      }).catch((e: unknown) => {
        throw new ConfigError(coerceError(e).message, { cause: e });
      });
      inspectors.push((ev) => bridge.inspect(ev));
      cleanups.unshift(() => bridge.close());
      logger.info({ url: bridge.url }, `Stately inspector bridge on ${bridge.url}${config.apiToken ? '?access_token=<TROUPE_API_TOKEN>' : ''}`);
    }
    const client = options.client ?? new Anthropic({ maxRetries: config.model.maxRetries, timeout: config.model.timeoutMs });
    const runtime = new Runtime({
      store,
      bus,
      logger: logger.child({ part: 'runtime' }),
      client,
      dataDir: config.dataDir,
      workspaceRoot: config.workspaceRoot,
      childEnv: config.childEnv,
      sandboxMode: config.sandboxMode,
      modelTimeoutMs: config.model.timeoutMs,
      inspectors,
    });
    const http = createApp({
      runtime,
      bus,
      logger,
      version: VERSION,
      apiToken: config.apiToken,
      sse: options.sse,
      host: config.host,
      maxStreams: config.maxStreams,
    });
    const { app } = http;
    const closeStreams = () => http.closeStreams();
    // Until the runs are resumed every request is answered 503 `starting` (with Retry-After),
    // not held: a client learns at once that it is early, and nothing can race the resume.
    let ready = false;
    const bound = await listen((request, env) => (ready ? app.fetch(request, env) : starting()), config.host, config.port);
    server = bound;
    cleanups.unshift(() => runtime.stop());
    await runtime.start();
    ready = true;
    const { port } = bound.address() as AddressInfo;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const url = `http://${host}:${port}`;
    logger.info({ url, db: store.kind, dataDir: config.dataDir }, 'troupe listening');

    let stopping: Promise<void> | null = null;
    return {
      url,
      port,
      runtime,
      bus,
      stop() {
        stopping ??= (async () => {
          // 1. Stop accepting and end the event streams; requests in flight get a short grace.
          const closed = new Promise<void>((resolve) => bound.close(() => resolve()));
          closeStreams();
          bound.closeIdleConnections();
          const grace = new Promise<void>((resolve) => setTimeout(resolve, REQUEST_GRACE_MS).unref());
          await Promise.race([closed, grace.then(() => bound.closeAllConnections())]);
          await closed;
          // 2. Stop the actors (in-flight effects are aborted; runs stay active and resume on the
          //    next start), then release the database and, last, the data dir.
          await runCleanups(cleanups, logger);
          logger.info('troupe stopped');
        })();
        return stopping;
      },
    };
  } catch (e) {
    if (server) {
      const s = server;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    }
    await runCleanups(cleanups, logger);
    throw e;
  }
}

function starting(): Response {
  return new Response(JSON.stringify(errorBody('starting', 'troupe is starting (resuming runs): retry in a moment')), {
    status: 503,
    headers: { 'content-type': 'application/json', 'retry-after': '1' },
  });
}

async function runCleanups(cleanups: (() => Promise<void> | void)[], logger: Logger): Promise<void> {
  for (const cleanup of cleanups) {
    try {
      await cleanup();
    } catch (e) {
      logger.warn({ err: coerceError(e) }, 'cleanup failed');
    }
  }
  cleanups.length = 0;
}

function listen(fetch: Parameters<typeof serve>[0]['fetch'], hostname: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname, port }) as Server;
    server.on('clientError', answerClientError);
    server.on('connect', refuseConnect);
    server.once('listening', () => resolve(server));
    server.once('error', (err: NodeJS.ErrnoException) => {
      // A busy or forbidden port is a setup problem with one clear line, not a crash.
      if (err.code === 'EADDRINUSE') reject(new ConfigError(`port ${port} on ${hostname} is in use: stop what listens there or choose another with --port`, { cause: err }));
      else if (err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') reject(new ConfigError(`cannot listen on ${hostname}:${port} (${err.code})`, { cause: err }));
      else reject(err);
    });
  });
}
