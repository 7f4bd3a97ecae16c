/**
 * The durable event log and its bus: appended with the state change, published after commit,
 * delivered in seq order exactly once — replayed, live, and across processes.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/client.ts';
import { EventBus } from '../../src/events/bus.ts';
import { readEvents } from '../../src/events/log.ts';
import { Outbox } from '../../src/events/outbox.ts';
import { event, type TroupeEvent } from '../../src/events/types.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestStore } from '../support/db.ts';
import { deferred } from '../support/deferred.ts';

let store: Store;
let bus: EventBus;
let outbox: Outbox;

beforeAll(async () => {
  store = await createTestStore();
  bus = new EventBus(store, silentLogger);
  await bus.start();
  outbox = new Outbox(store, bus);
});

afterAll(async () => {
  await bus.stop();
  await store.close();
});

const project = () => `prj_test_${randomBytes(4).toString('hex')}`;

/** `n` transactions at once, each appending `per` progress events for `projectId`. */
function appendConcurrently(projectId: string, n: number, per: number): Promise<unknown> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      outbox.transact(async (_tx, emit) => {
        for (let j = 0; j < per; j++) {
          emit(event('progress', { total: i, pending: j, inProgress: 0, review: 0, completed: 0, failed: 0, blocked: 0, cancelled: 0, percent: 0 }, { projectId }));
        }
      }),
    ),
  );
}

async function tableEvents(projectId: string, afterSeq = 0): Promise<TroupeEvent[]> {
  return readEvents(store.db, { afterSeq, projectId, limit: 100_000 });
}

function collect(projectId: string, until: number, fromSeq?: number, types?: string[]) {
  const got: TroupeEvent[] = [];
  const done = deferred<TroupeEvent[]>();
  const sub = bus.subscribe({ projectId, fromSeq, types }, (e) => {
    got.push(e);
    if (got.length === until) done.resolve(got);
  });
  return { got, done: done.promise, sub };
}

describe('event log and bus', () => {
  it('delivers events of concurrent transactions live, each once, in strictly increasing seq order', async () => {
    const p = project();
    const live = collect(p, 100);
    await appendConcurrently(p, 20, 5);
    const got = await live.done;
    live.sub.close();
    const stored = await tableEvents(p);
    expect(got.map((e) => e.seq)).toEqual(stored.map((e) => e.seq));
    expect(got.every((e, i) => i === 0 || e.seq > got[i - 1]!.seq)).toBe(true);
    expect(got[0]).toMatchObject({ type: 'progress', projectId: p });
    expect(typeof got[0]!.at).toBe('string');
  });

  it('a subscriber joining mid-stream with a cursor gets every later event exactly once, in order: replay, then live', async () => {
    const p = project();
    await appendConcurrently(p, 10, 3);
    const cursor = (await tableEvents(p))[14]!.seq;
    // Appends race the replay: the subscription must stitch them without a gap or a duplicate.
    const writing = appendConcurrently(p, 30, 2);
    const late = collect(p, 15 + 60, cursor);
    await writing;
    const got = await late.done;
    late.sub.close();
    const expected = await tableEvents(p, cursor);
    expect(got.map((e) => e.seq)).toEqual(expected.map((e) => e.seq));
    expect(new Set(got.map((e) => e.seq)).size).toBe(got.length);
  });

  it('filters by project and by type', async () => {
    const p = project();
    const other = project();
    const only = collect(p, 1, 0, ['run.started']);
    await outbox.transact(async (_tx, emit) => {
      emit(event('task.assigned', { key: 'a', agentId: 'backend-1' }, { projectId: p }));
      emit(event('run.started', { status: 'running' }, { projectId: other }));
      emit(event('run.started', { status: 'running' }, { projectId: p, runId: 'run_x' }));
    });
    const [got] = await only.done;
    only.sub.close();
    expect(got).toMatchObject({ type: 'run.started', projectId: p, runId: 'run_x', data: { status: 'running' } });
  });

  it('a listener that throws does not stop delivery to others', async () => {
    const p = project();
    const bad = bus.subscribe({ projectId: p }, () => {
      throw new Error('listener bug');
    });
    const good = collect(p, 2);
    await appendConcurrently(p, 2, 1);
    expect(await good.done).toHaveLength(2);
    bad.close();
    good.sub.close();
  });

  it('a rolled-back transaction publishes nothing and leaves no hole in delivery', async () => {
    const p = project();
    const live = collect(p, 2);
    await outbox.transact(async (_tx, emit) => emit(event('run.started', { status: 'running' }, { projectId: p })));
    await expect(
      outbox.transact(async (_tx, emit) => {
        emit(event('run.failed', { status: 'failed', summary: 'x' }, { projectId: p }));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await outbox.transact(async (_tx, emit) => emit(event('run.completed', { status: 'completed', summary: 'ok' }, { projectId: p })));
    const got = await live.done;
    live.sub.close();
    expect(got.map((e) => e.type)).toEqual(['run.started', 'run.completed']);
  });

  it('paces a replay by the consumer: nothing more is read than it has room for, and nothing is lost', async () => {
    const p = project();
    await appendConcurrently(p, 30, 100);
    const stored = await tableEvents(p);
    let gate = deferred();
    let waits = 0;
    const got: TroupeEvent[] = [];
    const sub = bus.subscribe(
      {
        projectId: p,
        fromSeq: 0,
        room: () => {
          // Room for 500 events at a time, then the consumer makes the replay wait.
          if (got.length % 500 !== 0) return Promise.resolve();
          waits += 1;
          return gate.promise;
        },
      },
      (e) => got.push(e),
    );
    // Live events arrive while the replay is held back.
    const live = appendConcurrently(p, 3, 10);
    while (got.length < stored.length) {
      const before = got.length;
      await new Promise((resolve) => setImmediate(resolve));
      if (got.length === before) {
        expect(got.length % 500).toBe(0);
        const open = gate;
        gate = deferred();
        open.resolve();
      }
    }
    gate.resolve();
    await live;
    await sub.ready;
    const all = await tableEvents(p);
    while (got.length < all.length) await new Promise((resolve) => setImmediate(resolve));
    sub.close();
    expect(waits).toBeGreaterThanOrEqual(6);
    expect(got.map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  });

  it('a replaying subscriber whose live buffer overflows reads those events from the table instead: no gap, no duplicate', async () => {
    const p = project();
    await appendConcurrently(p, 2, 10);
    const hold = deferred();
    const waiting = deferred();
    let first = true;
    const got: TroupeEvent[] = [];
    const sub = bus.subscribe(
      {
        projectId: p,
        fromSeq: 0,
        room: () => {
          if (!first) return Promise.resolve();
          first = false;
          waiting.resolve();
          return hold.promise;
        },
      },
      (e) => got.push(e),
    );
    // The replay has read its (short) first page and waits; now more than the live buffer holds
    // (10 000) is published.
    await waiting.promise;
    await appendConcurrently(p, 11, 1_000);
    hold.resolve();
    await sub.ready;
    const all = await tableEvents(p);
    while (got.length < all.length) await new Promise((resolve) => setImmediate(resolve));
    sub.close();
    expect(got.map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  });
});
