/**
 * Event streams (SSE) and the event log, the inspection stream and the machine definitions.
 *
 * A stream subscribes first, replays from `Last-Event-ID` (or `?since=`), then goes live: each
 * event once, in order. The bus listener only queues a frame (never blocks); a client that
 * stops reading is cut off by its channel and resumes with its last id. `docs` is each route's
 * entry in `/openapi.json`.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Runtime } from '../../actors/runtime/runtime.ts';
import { TroupeError } from '../../errors.ts';
import type { EventBus } from '../../events/bus.ts';
import { EVENT_TYPES, type TroupeEvent } from '../../events/types.ts';
import { HttpRefusal } from '../errors.ts';
import { openSse, type SseChannel, type SseOptions } from '../sse.ts';
import { describe, eventPageSchema, json, machinesSchema, textBody, type RouteDoc } from '../openapi-schemas.ts';
import { valid } from '../validate.ts';

const KNOWN = new Set<string>(EVENT_TYPES);
const OVERFLOW_GRACE_MS = 2_000;
const seq = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const typesList = z
  .string()
  .max(2000)
  .transform((s, ctx) => {
    const types = s.split(',').map((t) => t.trim()).filter(Boolean);
    const unknown = types.filter((t) => !KNOWN.has(t));
    if (unknown.length > 0) ctx.addIssue({ code: 'custom', message: `unknown event type(s): ${unknown.join(', ')}` });
    return types;
  });

const since = seq.describe('replay from after this event seq (a `Last-Event-ID` header wins over it)');
const types = typesList.describe('comma-separated event types to keep (default: all)');
const accessToken = z.string().describe('the API token, for EventSource clients that cannot send `Authorization`');
const streamQuery = z.object({ since: since.optional(), types: types.optional(), access_token: accessToken.optional() });
const logQuery = z.object({ since: seq.default(0).describe('events after this seq'), limit: z.coerce.number().int().min(1).max(1000).default(100), types: types.optional() });
const idParam = z.object({ id: z.string().min(1).max(100) });

const SSE = 'Frames `id: <seq>`, `event: <type>`, `data: <Event as JSON>`; reconnect with `Last-Event-ID`.';
const stream = (description: string) => ({ 200: { description, content: textBody('text/event-stream') } });
const docs = {
  projectEvents: { tag: 'events', summary: 'A project’s events, live (SSE)', description: `From the project’s first event unless a cursor is given. ${SSE}`, ok: stream(SSE), errors: [404, 503] },
  events: { tag: 'events', summary: 'Every project’s events, live (SSE)', description: `From now unless a cursor is given. ${SSE}`, ok: stream(SSE), errors: [503] },
  log: { tag: 'events', summary: 'A project’s events as a JSON page', ok: { 200: { description: 'One page', content: json(eventPageSchema) } }, errors: [404] },
  inspect: {
    tag: 'events',
    summary: 'XState inspection events (SSE)',
    description: 'In the wire format of `@statelyai/inspect`: the live actors first, then everything they do.',
    ok: stream('Inspection events'),
    errors: [404, 503],
  },
  machines: { tag: 'machines', summary: 'The statecharts the runtime runs', ok: { 200: { description: 'Name and version of each', content: json(machinesSchema) } } },
  machine: {
    tag: 'machines',
    summary: 'A machine’s definition',
    description: 'Its XState `toJSON()` definition; `format=mermaid`: `stateDiagram-v2` text.',
    ok: { 200: { description: 'The definition', content: { ...json(z.record(z.string(), z.unknown())), ...textBody('text/plain') } } },
    errors: [404],
  },
} satisfies Record<string, RouteDoc>;

export interface StreamRoutesOptions {
  runtime: Runtime;
  bus: EventBus;
  sse?: SseOptions | undefined;
  /** Every open stream, so shutdown can close them (and so they can be counted). */
  streams: Set<SseChannel>;
  /** Streams open at once across every stream route; one more is 503 `too_many_streams`. */
  maxStreams: number;
}

/** What a refused stream client is told to wait (seconds): long enough for a slot to free up, short for a person. */
const RETRY_AFTER_S = 5;

export function streamRoutes(o: StreamRoutesOptions): Hono {
  const app = new Hono();

  // Each stream holds a socket, a subscription and a queue of up to `maxQueuedBytes`: the cap bounds
  // what clients can pin. Checked and taken in one synchronous step, so no two requests share a slot;
  // the slot comes back when the channel closes, for whatever reason (client gone, overflow, shutdown).
  const open = (c: Context): SseChannel => {
    if (o.streams.size >= o.maxStreams) {
      throw new HttpRefusal(503, 'too_many_streams', `${o.maxStreams} event streams are open already (TROUPE_MAX_STREAMS); retry later`, {
        'Retry-After': String(RETRY_AFTER_S),
      });
    }
    const { response, channel } = openSse({ ...o.sse, signal: c.req.raw.signal });
    o.streams.add(channel);
    channel.onClose((reason) => {
      o.streams.delete(channel);
      // A stuck client's socket still holds what node and the kernel buffered (a few MiB):
      // give the final overflow frame a moment, then let the socket go.
      const socket = (c.env as { outgoing?: { destroy(): void; writableFinished?: boolean } } | undefined)?.outgoing;
      if (reason === 'overflow' && socket) {
        setTimeout(() => {
          if (!socket.writableFinished) socket.destroy();
        }, OVERFLOW_GRACE_MS).unref();
      }
    });
    c.res = response;
    return channel;
  };

  const stream = async (c: Context, projectId: string | undefined, query: z.output<typeof streamQuery>) => {
    const header = c.req.header('last-event-id');
    let cursor = query.since;
    if (header !== undefined) {
      const parsed = seq.safeParse(header);
      if (!parsed.success) throw new TroupeError('validation_failed', 'invalid Last-Event-ID', [{ path: 'Last-Event-ID', message: 'must be an event seq' }]);
      cursor = parsed.data;
    }
    // Without a cursor, a project stream starts from the project's first event; /api/events starts
    // live: after the last event committed when the request came (this process's feed may lag
    // behind the log by a moment, when other processes write too).
    if (cursor === undefined) cursor = projectId !== undefined ? 0 : await o.bus.committedSeq();
    const channel = open(c);
    const sub = o.bus.subscribe({ projectId, fromSeq: cursor, types: query.types, room: () => channel.room() }, (e: TroupeEvent) => {
      if (!channel.send({ id: e.seq, event: e.type, data: JSON.stringify(e) })) sub.close();
    });
    channel.onClose(() => sub.close());
    sub.ready.catch(() => channel.close());
    return c.res;
  };

  app.get('/projects/:id/events', describe(docs.projectEvents), valid('param', idParam), valid('query', streamQuery), async (c) => {
    const { id } = c.req.valid('param');
    await o.runtime.getProject(id);
    return stream(c, id, c.req.valid('query'));
  });

  app.get('/events', describe(docs.events), valid('query', streamQuery), (c) => stream(c, undefined, c.req.valid('query')));

  app.get('/projects/:id/events/log', describe(docs.log), valid('param', idParam), valid('query', logQuery), async (c) => {
    const { since, limit, types } = c.req.valid('query');
    return c.json(await o.runtime.eventLog(c.req.valid('param').id, since, limit, types));
  });

  app.get('/projects/:id/inspect', describe(docs.inspect), valid('param', idParam), async (c) => {
    const { id } = c.req.valid('param');
    await o.runtime.getProject(id);
    const channel = open(c);
    const stop = await o.runtime.watchInspection(id, (e) => {
      if (!channel.send({ event: e.type, data: JSON.stringify(e) })) stop();
    });
    channel.onClose(() => stop());
    return c.res;
  });

  app.get('/machines', describe(docs.machines), (c) => c.json(o.runtime.machines()));
  app.get('/machines/:name', describe(docs.machine), valid('query', z.object({ format: z.enum(['json', 'mermaid']).default('json') })), (c) => {
    const { format } = c.req.valid('query');
    const definition = o.runtime.machineDefinition(c.req.param('name'), format);
    return format === 'mermaid' ? c.text(definition as string) : c.json(definition as object);
  });

  return app;
}
