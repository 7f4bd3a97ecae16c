/**
 * Cross-process delivery exists only on Postgres (PGlite is one process): this file runs in
 * the Postgres pass of the suite.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createStore, type Store } from '../../src/db/client.ts';
import { EventBus } from '../../src/events/bus.ts';
import { readEvents } from '../../src/events/log.ts';
import { Outbox } from '../../src/events/outbox.ts';
import { event, type TroupeEvent } from '../../src/events/types.ts';
import { silentLogger } from '../../src/logger.ts';
import { deferred } from '../support/deferred.ts';

let writer: Store;
let reader: Store;
let writerBus: EventBus;
let readerBus: EventBus;

beforeAll(async () => {
  const url = inject('databaseUrl');
  if (!url) throw new Error('this file needs TROUPE_TEST_DB=postgres');
  writer = await createStore({ kind: 'postgres', url, max: 3 });
  reader = await createStore({ kind: 'postgres', url, max: 2 });
  writerBus = new EventBus(writer, silentLogger);
  readerBus = new EventBus(reader, silentLogger);
  await Promise.all([writerBus.start(), readerBus.start()]);
});

afterAll(async () => {
  await Promise.all([writerBus.stop(), readerBus.stop()]);
  await Promise.all([writer.close(), reader.close()]);
});

describe('LISTEN/NOTIFY', () => {
  it('delivers another process\'s events, each once, in seq order (NOTIFY carries a seq; rows come from the table)', async () => {
    const projectId = `prj_test_${randomBytes(4).toString('hex')}`;
    const outbox = new Outbox(writer, writerBus);
    const got: TroupeEvent[] = [];
    const done = deferred();
    readerBus.subscribe({ projectId }, (e) => {
      got.push(e);
      if (got.length === 10) done.resolve();
    });
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        outbox.transact(async (_tx, emit) => {
          emit(event('task.assigned', { key: `k${i}`, agentId: 'backend-1' }, { projectId }));
          emit(event('task.assigned', { key: `k${i}b`, agentId: 'backend-2' }, { projectId }));
        }),
      ),
    );
    await done.promise;
    const stored = await readEvents(writer.db, { afterSeq: 0, projectId, limit: 100 });
    expect(got.map((e) => e.seq)).toEqual(stored.map((e) => e.seq));
  });
});
