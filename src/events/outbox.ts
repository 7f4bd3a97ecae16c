import type { Store, Tx } from '../db/client.ts';
import { replayedWrite } from '../db/retry.ts';
import type { EventBus } from './bus.ts';
import { appendEvents, checkFence, writeCommitted, type RowFence } from './log.ts';
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

  /**
   * @param fence checked last, in the events' append (or on its own when there is none): the
   * transaction commits only while the run's row names this process (see `RowFence`).
   */
  transact<T>(fn: (tx: Tx, emit: Emit) => Promise<T>, fence?: RowFence): Promise<T> {
    return this.track(this.run(fn, fence));
  }

  /**
   * Events that report no change to any row: one statement, its own transaction (no BEGIN and
   * COMMIT round trips). On PGlite it waits for any open transaction, like every query there.
   */
  append(...events: NewEvent[]): Promise<void> {
    const write = replayedWrite();
    return this.track(
      (async () => {
        if (write?.maybeCommitted && (await writeCommitted(this.store.db, write.key))) return this.bus.hint();
        await this.publish(await appendEvents(this.store.db, this.store.kind, events, write?.key));
      })(),
    );
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

  private async run<T>(fn: (tx: Tx, emit: Emit) => Promise<T>, fence?: RowFence): Promise<T> {
    const write = replayedWrite();
    let stored: TroupeEvent[] = [];
    let replayed: { value: T } | null = null;
    try {
      const result = await this.store.db.transaction(async (tx) => {
        const committed = write?.maybeCommitted === true && (await writeCommitted(tx, write.key));
        const pending: NewEvent[] = [];
        const value = await fn(tx, (...events) => {
          pending.push(...events);
        });
        if (committed) {
          // An earlier try committed and only its acknowledgement was lost: its rows and events
          // stand. This try ran against them (guarded updates see them) for its answer, and is
          // rolled back, so no event is appended twice.
          replayed = { value };
          throw new ReplayedWrite();
        }
        if (fence && pending.length === 0) await checkFence(tx, fence);
        stored = await appendEvents(tx, this.store.kind, pending, write?.key, fence);
        // The commit's NOTIFY may come back before the commit's own answer: it is ours, and
        // `publish` dispatches it (no read of the log for it).
        this.bus.expect(stored);
        return value;
      });
      await this.publish(stored);
      return result;
    } catch (e) {
      // Appended, and then the commit failed (or its answer was lost): whatever it left, the feed reads.
      if (this.bus.unexpect(stored)) this.bus.hint();
      if (!(e instanceof ReplayedWrite) || replayed === null) throw e;
      // The committed events were never published by this process: the feed reads them.
      this.bus.hint();
      return (replayed as { value: T }).value;
    }
  }

  private async publish(stored: TroupeEvent[]): Promise<void> {
    this.bus.published(stored);
    // PGlite runs in this thread and its awaits never reach the event loop's I/O phase: a burst
    // of writes would starve every socket (SSE clients could not drain). One turn per commit.
    if (this.store.kind === 'pglite') await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Rolls back a try of a write that an earlier try had committed. */
class ReplayedWrite extends Error {
  constructor() {
    super('the write had committed already');
  }
}
