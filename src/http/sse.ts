/**
 * Server-Sent Events (CONTRACT §4) for callers that must never block: an event-bus listener calls
 * the synchronous `send()`; a pull-based body hands frames over only as fast as the client reads,
 * and a client that stops reading is cut off past a byte limit, so it can neither stall the bus
 * nor grow memory without bound. Not Hono's `streamSSE`: its `write()` swallows errors after a
 * disconnect, it has no heartbeat, and it cannot tell us that the client stopped reading.
 */
import { coerceError } from '../errors.ts';

/** Why a channel closed: the client went away, it read too slowly, or `close()` was called. */
export type SseCloseReason = 'client' | 'overflow' | 'closed';

export interface SseFrame {
  id?: string | number;
  event?: string;
  data: string;
}

export interface SseOptions {
  /** Queue limit in bytes before the client is cut off (default 2 MiB). */
  maxQueuedBytes?: number;
  /** Interval of `: ping` comment lines (default 15 000 ms; 0 disables them). */
  heartbeatMs?: number;
  /** Aborted when the client goes away (pass `c.req.raw.signal`). */
  signal?: AbortSignal;
}

export interface SseChannel {
  /** Queues one frame; false once closed (or just overflowed) or for an invalid frame. Never throws, never blocks. */
  send(frame: SseFrame): boolean;
  /** Ends the stream after what is queued. */
  close(): void;
  readonly closed: boolean;
  /** The id of the last frame handed to the response body (not necessarily received): for logs. */
  readonly lastFlushedId: string | undefined;
  /** Runs once when the channel closes for any reason: client gone, overflow, close(); at once if already closed. */
  onClose(fn: (reason: SseCloseReason) => void): void;
  /** Resolves once the queue is below half its limit (or the channel closed): a producer that can wait, waits here. */
  room(): Promise<void>;
}

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};
const PING = ': ping\n\n';
// No id: the overflow frame is not a log event.
const OVERFLOW = formatSseFrame({
  event: 'stream.overflow',
  data: JSON.stringify({ reason: 'the client is not reading fast enough; reconnect with Last-Event-ID to resume' }),
});
const encoder = new TextEncoder();

/** One SSE frame as text: `id:`, `event:`, one `data:` line per line of data, blank line. Throws when id or event contains CR or LF. */
export function formatSseFrame(frame: SseFrame): string {
  let text = '';
  if (frame.id !== undefined) text += `id: ${singleLine('id', String(frame.id))}\n`;
  if (frame.event !== undefined) text += `event: ${singleLine('event', frame.event)}\n`;
  for (const line of frame.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return `${text}\n`;
}

function singleLine(field: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new TypeError(`SSE ${field} must not contain CR or LF`);
  return value;
}

/** The Response (status 200, SSE headers) and the channel that feeds it. */
export function openSse(options: SseOptions = {}): { response: Response; channel: SseChannel } {
  const { maxQueuedBytes = 2 * 1024 * 1024, heartbeatMs = 15_000, signal } = options;
  let queue: string[] = [];
  let queuedBytes = 0;
  let lastQueuedId: string | undefined;
  let lastFlushedId: string | undefined;
  let reason: SseCloseReason | undefined;
  let cancelled = false; // the consumer cancelled: the controller must not be touched again
  let wake: (() => void) | undefined; // resolves a pull that waits for data
  let roomWaiters: (() => void)[] = [];
  const listeners: ((reason: SseCloseReason) => void)[] = [];
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const onAbort = (): boolean => finish('client');
  const timer = heartbeatMs > 0 ? setInterval(() => push(PING), heartbeatMs).unref() : undefined;

  const body = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        c.enqueue(encoder.encode(': connected\n\n')); // first bytes flow before any event is due
      },
      async pull(c) {
        if (queue.length === 0 && reason === undefined) await new Promise<void>((resolve) => (wake = resolve));
        if (reason === undefined && queue.length > 0) c.enqueue(takeQueue()); // one chunk per batch
      },
      cancel() {
        cancelled = true;
        finish('client');
      },
    },
    // highWaterMark 0: pull runs only while the consumer waits for a read, so unread frames stay
    // in `queue`, where they are counted, rather than piling up inside the stream.
    { highWaterMark: 0 },
  );

  function takeQueue(): Uint8Array {
    const chunk = encoder.encode(queue.join(''));
    queue = [];
    queuedBytes = 0;
    lastFlushedId = lastQueuedId;
    releaseRoom();
    return chunk;
  }

  function releaseRoom(): void {
    const waiters = roomWaiters;
    roomWaiters = [];
    for (const w of waiters) w();
  }

  function push(text: string, id?: string): boolean {
    if (reason !== undefined) return false;
    queuedBytes += Buffer.byteLength(text);
    if (queuedBytes > maxQueuedBytes) return finish('overflow');
    queue.push(text);
    if (id !== undefined) lastQueuedId = id;
    wakePull();
    return true;
  }

  function finish(why: SseCloseReason): false {
    if (reason !== undefined) return false;
    reason = why;
    clearInterval(timer);
    signal?.removeEventListener('abort', onAbort);
    if (!cancelled) {
      // close() hands over what is queued; overflow drops it for one final frame; a signal abort
      // drops it. Then the body ends.
      if (why === 'closed' && queue.length > 0) controller.enqueue(takeQueue());
      if (why === 'overflow') controller.enqueue(encoder.encode(OVERFLOW));
      controller.close();
    }
    queue = [];
    queuedBytes = 0;
    wakePull();
    releaseRoom();
    for (const fn of listeners.splice(0)) runListener(fn, why);
    return false;
  }

  function wakePull(): void {
    const w = wake;
    wake = undefined;
    w?.();
  }

  if (signal?.aborted) finish('client');
  else signal?.addEventListener('abort', onAbort, { once: true });

  const channel: SseChannel = {
    send(frame) {
      const text = reason === undefined ? tryFormat(frame) : undefined;
      return text !== undefined && push(text, frame.id === undefined ? undefined : String(frame.id));
    },
    close: () => void finish('closed'),
    get closed() {
      return reason !== undefined;
    },
    get lastFlushedId() {
      return lastFlushedId;
    },
    onClose(fn) {
      if (reason === undefined) listeners.push(fn);
      else runListener(fn, reason);
    },
    room() {
      if (reason !== undefined || queuedBytes < maxQueuedBytes / 2) return Promise.resolve();
      return new Promise<void>((resolve) => roomWaiters.push(resolve));
    },
  };
  return { response: new Response(body, { status: 200, headers: HEADERS }), channel };
}

/** An invalid frame is the sender's bug, but it must not throw into the event bus. */
function tryFormat(frame: SseFrame): string | undefined {
  try {
    return formatSseFrame(frame);
  } catch {
    return undefined;
  }
}

/** A throwing listener must not break `send()` (the event bus) or the other listeners. */
function runListener(fn: (reason: SseCloseReason) => void, reason: SseCloseReason): void {
  try {
    fn(reason);
  } catch (e) {
    console.error('an SSE onClose listener threw', coerceError(e));
  }
}
