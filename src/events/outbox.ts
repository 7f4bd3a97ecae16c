import type { Store, Tx } from '../db/client.ts';
import type { EventBus } from './bus.ts';
import { appendEvents } from './log.ts';
import type { NewEvent, TroupeEvent } from './types.ts';

export type Emit = (...events: NewEvent[]) => void;

/**
 * A unit of work: `fn` changes rows and emits the events that report the change; the events
 * are appended in the same transaction and published only after it commits.
 */
export class Outbox {
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(
    readonly store: Store,
    private readonly bus: EventBus,
  ) {}

  transact<T>(fn: (tx: Tx, emit: Emit) => Promise<T>): Promise<T> {
    return this.track(this.run(fn));
  }

  /**
   * Events that report no change to any row: one statement, its own transaction (no BEGIN and
   * COMMIT round trips). On PGlite it waits for any open transaction, like every query there.
   */
  append(...events: NewEvent[]): Promise<void> {
    return this.track(appendEvents(this.store.db, this.store.kind, events).then((stored) => this.publish(stored)));
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.inflight.add(work);
    const forget = () => this.inflight.delete(work);
    work.then(forget, forget);
    return work;
  }

  /** Resolves once every transaction started so far has settled (shutdown waits for them). */
  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private async run<T>(fn: (tx: Tx, emit: Emit) => Promise<T>): Promise<T> {
    let stored: TroupeEvent[] = [];
    const result = await this.store.db.transaction(async (tx) => {
      const pending: NewEvent[] = [];
      const value = await fn(tx, (...events) => {
        pending.push(...events);
      });
      stored = await appendEvents(tx, this.store.kind, pending);
      return value;
    });
    await this.publish(stored);
    return result;
  }

  private async publish(stored: TroupeEvent[]): Promise<void> {
    this.bus.published(stored);
    // PGlite runs in this thread and its awaits never reach the event loop's I/O phase: a burst
    // of writes would starve every socket (SSE clients could not drain). One turn per commit.
    if (this.store.kind === 'pglite') await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
