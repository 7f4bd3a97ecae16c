/**
 * A commit whose acknowledgement is lost looks like a failure, and `withDbRetry` runs the write
 * again. The events of the write must not be appended twice, its rows must not be written twice,
 * and the caller gets the answer the write gives against what had committed.
 */
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/client.ts';
import { withDbRetry } from '../../src/db/retry.ts';
import { projects } from '../../src/db/schema.ts';
import { EventBus } from '../../src/events/bus.ts';
import { readEvents } from '../../src/events/log.ts';
import { Outbox } from '../../src/events/outbox.ts';
import { event } from '../../src/events/types.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestStore } from '../support/db.ts';

let store: Store;
/** The same store, whose next `losses` transactions commit and then report a lost connection. */
let lossy: Store;
let losses = 0;
let bus: EventBus;

beforeAll(async () => {
  store = await createTestStore();
  const db = Object.create(store.db) as Store['db'];
  db.transaction = (async (...args: Parameters<Store['db']['transaction']>) => {
    const value: unknown = await store.db.transaction(...args);
    if (losses > 0) {
      losses--;
      throw Object.assign(new Error('write CONNECTION_CLOSED 127.0.0.1:5432'), { code: 'CONNECTION_CLOSED' });
    }
    return value;
  }) as Store['db']['transaction'];
  lossy = { ...store, db };
  bus = new EventBus(store, silentLogger);
  await bus.start();
});

afterAll(async () => {
  await bus.stop();
  await store.close();
});

const newProject = () => `prj_replay_${randomBytes(4).toString('hex')}`;

async function logOf(projectId: string) {
  return readEvents(store.db, { afterSeq: 0, projectId, limit: 100 });
}

describe('a write retried after its commit acknowledgement was lost', () => {
  it('appends its events once, writes its rows once, and answers as the committed write', async () => {
    const outbox = new Outbox(lossy, bus);
    const projectId = newProject();
    let tries = 0;
    losses = 1;
    const answer = await withDbRetry(() =>
      outbox.transact(async (tx, emit) => {
        tries++;
        // Not idempotent on its own: a second try would insert a second row.
        const existing = await tx.select({ id: projects.id }).from(projects).where(eq(projects.name, projectId));
        if (existing.length === 0) {
          await tx.insert(projects).values({ id: `${projectId}_${tries}`, name: projectId, workspace: '/tmp/x', testCommand: ['true'], config: {} });
        }
        emit(event('run.started', { status: 'running' }, { projectId }), event('run.cancelled', { status: 'cancelled' }, { projectId }));
        return existing.length === 0 ? 'inserted' : 'found';
      }),
    );
    expect(tries).toBe(2);
    expect(answer).toBe('found');
    expect((await logOf(projectId)).map((e) => e.type)).toEqual(['run.started', 'run.cancelled']);
    expect(await store.db.select().from(projects).where(eq(projects.name, projectId))).toHaveLength(1);
    await store.db.delete(projects).where(eq(projects.name, projectId));
  });

  it('an event-only append is not appended twice either, and a try that had not committed is written', async () => {
    const outbox = new Outbox(store, bus);
    const projectId = newProject();
    // The lost acknowledgement, for a one-statement append: the first try commits, then fails.
    let tries = 0;
    await withDbRetry(async () => {
      tries++;
      await outbox.append(event('run.started', { status: 'running' }, { projectId }));
      if (tries === 1) throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    });
    expect(tries).toBe(2);
    expect((await logOf(projectId)).map((e) => e.type)).toEqual(['run.started']);

    // A failure before the commit: the retry writes it.
    const lossless = new Outbox(store, bus);
    let failed = false;
    await withDbRetry(() =>
      lossless.transact(async (_tx, emit) => {
        if (!failed) {
          failed = true;
          throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
        }
        emit(event('run.cancelled', { status: 'cancelled' }, { projectId }));
      }),
    );
    expect((await logOf(projectId)).map((e) => e.type)).toEqual(['run.started', 'run.cancelled']);
  });
});

describe('event data from outside', () => {
  it('with NUL or a lone surrogate is stored with them made visible, not refused', async () => {
    const outbox = new Outbox(store, bus);
    const projectId = newProject();
    await outbox.append(event('files.rejected', { attempt: 1, reason: 'bad\0path \ud800', path: 'a\0b' }, { projectId }));
    const [stored] = await logOf(projectId);
    expect(stored?.data).toEqual({ attempt: 1, reason: 'bad\u2400path \ufffd', path: 'a\u2400b' });
  });
});
