/**
 * Another process writes to the same Postgres: this process's feed learns of its events a moment
 * later, through NOTIFY. A client connecting to /api/events in that moment must still start at
 * the moment of its connection. (Postgres pass only: PGlite is one process.)
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createStore, type Store } from '../../src/db/client.ts';
import { EventBus } from '../../src/events/bus.ts';
import { Outbox } from '../../src/events/outbox.ts';
import { event } from '../../src/events/types.ts';
import { silentLogger } from '../../src/logger.ts';
import { parseFrames, startTestApp, type TestApp } from '../support/app.ts';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { moduleWithTest } from '../support/replies.ts';

let t: TestApp | undefined;
let other: { store: Store; bus: EventBus } | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  await other?.bus.stop();
  await other?.store.close();
  other = undefined;
});

describe('/api/events with another process writing', () => {
  it('starts after the last event committed when the request came, even one this process has not heard of yet', async () => {
    t = await startTestApp((req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok'));
    const url = inject('databaseUrl');
    if (!url) throw new Error('this file needs TROUPE_TEST_DB=postgres');
    const store = await createStore({ kind: 'postgres', url, max: 2 });
    other = { store, bus: new EventBus(store, silentLogger) };
    const outbox = new Outbox(store, other.bus);
    for (let i = 0; i < 5; i++) {
      const before = `prj_before_${randomBytes(4).toString('hex')}`;
      const after = `prj_after_${randomBytes(4).toString('hex')}`;
      // Committed elsewhere; the client connects at once, before NOTIFY can have reached us.
      await outbox.append(event('progress', { total: 1, pending: 1, inProgress: 0, review: 0, completed: 0, failed: 0, blocked: 0, cancelled: 0, percent: 0 }, { projectId: before }));
      const res = await t.request('GET', '/api/events');
      const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      expect(new TextDecoder().decode((await reader.read()).value)).toBe(': connected\n\n');
      await outbox.append(event('progress', { total: 1, pending: 0, inProgress: 1, review: 0, completed: 0, failed: 0, blocked: 0, cancelled: 0, percent: 0 }, { projectId: after }));
      let text = '';
      while (!text.includes(after)) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      const projects = parseFrames(text).map((f) => (JSON.parse(f.data) as { projectId: string }).projectId);
      expect(projects).not.toContain(before);
    }
  });
});
