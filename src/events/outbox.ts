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
  constructor(
    readonly store: Store,
    private readonly bus: EventBus,
  ) {}

  async transact<T>(fn: (tx: Tx, emit: Emit) => Promise<T>): Promise<T> {
    let stored: TroupeEvent[] = [];
    const result = await this.store.db.transaction(async (tx) => {
      const pending: NewEvent[] = [];
      const value = await fn(tx, (...events) => {
        pending.push(...events);
      });
      stored = await appendEvents(tx, this.store.kind, pending);
      return value;
    });
    this.bus.published(stored);
    return result;
  }
}
