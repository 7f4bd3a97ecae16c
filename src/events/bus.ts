/**
 * Publish/subscribe over the durable log. The table is the truth; publishing and NOTIFY are
 * hints that there is something new to read.
 *
 * One feed per process keeps `lastSeq` and dispatches events to subscribers strictly in seq
 * order. Events committed by this process arrive through `published()` and are dispatched
 * directly when they follow `lastSeq`; anything else (another process's NOTIFY, a gap left
 * by a rolled-back transaction, a reconnect) triggers a read of the log from `lastSeq`.
 */
import type { Store } from '../db/client.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { EVENTS_CHANNEL, lastSeq as readLastSeq, readEvents } from './log.ts';
import type { TroupeEvent } from './types.ts';

export interface SubscribeOptions {
  /** Only this project's events. */
  projectId?: string | undefined;
  /** Only these types. */
  types?: readonly string[] | undefined;
  /** Replay every event with seq > fromSeq first; omitted: live events only. */
  fromSeq?: number | undefined;
  /**
   * Paces the replay: awaited after each replayed event, so a slow consumer is fed from the
   * table as fast as it reads instead of being flooded with whole pages.
   */
  room?: (() => Promise<void>) | undefined;
}

export interface Subscription {
  /** Resolves once the replay is done and the subscription is live. */
  readonly ready: Promise<void>;
  /** Seq of the last event delivered (or the starting cursor). */
  readonly lastSeq: number;
  close(): void;
}

type Listener = (event: TroupeEvent) => void;

interface Subscriber {
  filter: SubscribeOptions;
  types: Set<string> | undefined;
  listener: Listener;
  lastSeq: number;
  replaying: boolean;
  buffer: TroupeEvent[];
  /** Live events were dropped from `buffer` during the replay: the table still has them. */
  dropped: boolean;
  closed: boolean;
}

const PAGE = 1000;
/** Live events held for a subscriber still replaying; past this the replay reads them from the table. */
const MAX_BUFFERED = 10_000;

export class EventBus {
  private lastSeq = 0;
  /** Last seqs of this process's commits under way (see `expect`). */
  private readonly own = new Set<number>();
  private readonly subscribers = new Set<Subscriber>();
  private fetching: Promise<void> | null = null;
  private fetchAgain = false;
  private unlisten: (() => Promise<void>) | null = null;
  private started = false;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  /** The seq of the newest event this process has dispatched. */
  get seq(): number {
    return this.lastSeq;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.lastSeq = await readLastSeq(this.store.db);
    if (this.store.kind === 'postgres') {
      // onListen runs after every (re)connect: catch up on what NOTIFY could not tell us.
      this.unlisten = await this.store.listen(
        EVENTS_CHANNEL,
        // The payload is the last seq of a commit: one this process already dispatched (its own
        // commits, mostly) needs no read.
        (payload) => {
          const seq = Number(payload);
          if (!(Number.isSafeInteger(seq) && (seq <= this.lastSeq || this.own.has(seq)))) this.hint();
        },
        () => this.hint(),
      );
    }
  }

  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = null;
    if (unlisten) await unlisten().catch((e: unknown) => this.logger.warn({ err: coerceError(e) }, 'unlisten failed'));
    await this.fetching;
    for (const sub of this.subscribers) sub.closed = true;
    this.subscribers.clear();
  }

  /** The seq of the last event committed to the log (which the feed may not have dispatched yet). */
  committedSeq(): Promise<number> {
    return readLastSeq(this.store.db);
  }

  /**
   * Called once a transaction of this process appended `events`, before it commits: the NOTIFY
   * of that commit (its last seq) is this process's own, and `published` will dispatch it.
   */
  expect(events: readonly TroupeEvent[]): void {
    const last = events.at(-1);
    if (last) this.own.add(last.seq);
  }

  /** The commit of `events` failed or was never acknowledged: returns whether they were expected. */
  unexpect(events: readonly TroupeEvent[]): boolean {
    const last = events.at(-1);
    return last !== undefined && this.own.delete(last.seq);
  }

  /** Called after a transaction that appended `events` has committed. Never throws. */
  published(events: readonly TroupeEvent[]): void {
    this.unexpect(events);
    const fresh = events.filter((e) => e.seq > this.lastSeq);
    if (fresh.length === 0) return;
    if (this.fetching === null && fresh[0]!.seq === this.lastSeq + 1 && isContiguous(fresh)) {
      this.dispatch(fresh);
      return;
    }
    this.hint();
  }

  /** Something may be in the log that we have not dispatched: read it. */
  hint(): void {
    if (this.fetching) {
      this.fetchAgain = true;
      return;
    }
    this.fetching = this.fetchLoop().finally(() => {
      this.fetching = null;
    });
  }

  private async fetchLoop(): Promise<void> {
    do {
      this.fetchAgain = false;
      try {
        for (;;) {
          const page = await readEvents(this.store.db, { afterSeq: this.lastSeq, limit: PAGE });
          if (page.length > 0) this.dispatch(page);
          if (page.length < PAGE) break;
        }
      } catch (e) {
        // The next hint (a publish, a NOTIFY, a reconnect) retries from lastSeq.
        this.logger.warn({ err: coerceError(e) }, 'event feed read failed');
      }
    } while (this.fetchAgain);
  }

  private dispatch(events: readonly TroupeEvent[]): void {
    for (const e of events) {
      if (e.seq <= this.lastSeq) continue;
      this.lastSeq = e.seq;
      for (const sub of this.subscribers) this.offer(sub, e);
    }
  }

  private offer(sub: Subscriber, e: TroupeEvent): void {
    if (sub.closed) return;
    if (sub.replaying) {
      if (sub.buffer.length >= MAX_BUFFERED) {
        sub.buffer = [];
        sub.dropped = true;
      }
      sub.buffer.push(e);
      return;
    }
    this.deliver(sub, e);
  }

  private deliver(sub: Subscriber, e: TroupeEvent): void {
    if (sub.closed || e.seq <= sub.lastSeq) return;
    sub.lastSeq = e.seq;
    if (sub.filter.projectId && e.projectId !== sub.filter.projectId) return;
    if (sub.types && !sub.types.has(e.type)) return;
    try {
      sub.listener(e);
    } catch (err) {
      this.logger.warn({ err: coerceError(err), seq: e.seq }, 'event listener threw');
    }
  }

  /**
   * Replays the log after `fromSeq` (if given), then delivers live events: each event once,
   * in seq order, no gap between replay and live. The listener must not block; a slow
   * consumer buffers on its own side.
   */
  subscribe(filter: SubscribeOptions, listener: Listener): Subscription {
    const sub: Subscriber = {
      filter,
      types: filter.types && filter.types.length > 0 ? new Set(filter.types) : undefined,
      listener,
      lastSeq: filter.fromSeq ?? this.lastSeq,
      replaying: filter.fromSeq !== undefined,
      buffer: [],
      dropped: false,
      closed: false,
    };
    // Registered before the replay query runs: whatever the feed dispatches from now on lands
    // in the buffer, and whatever it dispatched before is already in the table.
    this.subscribers.add(sub);
    const ready = sub.replaying ? this.replay(sub) : Promise.resolve();
    return {
      ready,
      get lastSeq() {
        return sub.lastSeq;
      },
      close: () => {
        sub.closed = true;
        sub.buffer = [];
        this.subscribers.delete(sub);
      },
    };
  }

  private async replay(sub: Subscriber): Promise<void> {
    try {
      await this.replayPages(sub);
    } catch (e) {
      // A replay that cannot finish must not turn into a live stream with a hole in it.
      sub.closed = true;
      this.subscribers.delete(sub);
      throw coerceError(e);
    }
  }

  private async replayPages(sub: Subscriber): Promise<void> {
    for (;;) {
      if (sub.closed) return;
      sub.dropped = false;
      const page = await readEvents(this.store.db, {
        afterSeq: sub.lastSeq,
        projectId: sub.filter.projectId,
        types: sub.filter.types,
        limit: PAGE,
      });
      for (const e of page) {
        this.deliver(sub, e);
        if (sub.filter.room) await sub.filter.room();
        if (sub.closed) return;
      }
      // Caught up — unless live events were dropped while this page was delivered.
      if (page.length < PAGE && !sub.dropped) break;
    }
    // Drain what arrived meanwhile (duplicates of the replay are dropped by seq), then live.
    const buffered = sub.buffer;
    sub.buffer = [];
    sub.replaying = false;
    for (const e of buffered) this.deliver(sub, e);
  }
}

function isContiguous(events: readonly TroupeEvent[]): boolean {
  for (let i = 1; i < events.length; i++) if (events[i]!.seq !== events[i - 1]!.seq + 1) return false;
  return true;
}
