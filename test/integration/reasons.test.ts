/**
 * Every reason the lead writes (a task's `reason`, a run's `summary`, and the events that carry
 * them) is a bounded sentence a person can read: never a database statement with its values,
 * never NUL (which Postgres would refuse, losing the write).
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { persistBatch } from '../../src/actors/runtime/lead-writer.ts';
import type { Store } from '../../src/db/client.ts';
import { projects, runs, tasks } from '../../src/db/schema.ts';
import { EventBus } from '../../src/events/bus.ts';
import { readEvents } from '../../src/events/log.ts';
import { Outbox } from '../../src/events/outbox.ts';
import { newId } from '../../src/ids.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestStore } from '../support/db.ts';

let store: Store;
let bus: EventBus;

beforeAll(async () => {
  store = await createTestStore();
  bus = new EventBus(store, silentLogger);
  await bus.start();
});

afterAll(async () => {
  await bus.stop();
  await store.close();
});

describe('reasons the lead writes', () => {
  it('carry no SQL and no NUL, and are bounded', async () => {
    const projectId = newId('prj');
    const runId = newId('run');
    const taskId = newId('tsk');
    await store.db.insert(projects).values({ id: projectId, name: 'reasons', workspace: '/tmp/reasons', testCommand: ['true'], config: {} });
    await store.db.insert(runs).values({ id: runId, projectId, status: 'running' });
    await store.db.insert(tasks).values({ id: taskId, projectId, key: 't', title: 't', description: '', agentType: 'backend', priority: 2, status: 'in_progress' });
    const leaky = `cannot record: Failed query: insert into "model_calls" ("response") values ($1)\nparams: {"text":"the model's secret answer\0"}`;
    await new Outbox(store, bus).transact((tx, emit) =>
      persistBatch(tx, emit, {
        projectId,
        runId,
        intents: [
          { type: 'fail', taskId, key: 't', detail: leaky },
          { type: 'run', status: 'failed', summary: `internal error: ${'x'.repeat(5000)}\0` },
        ],
      }),
    );
    const [task] = await store.db.select().from(tasks).where(eq(tasks.id, taskId));
    const [run] = await store.db.select().from(runs).where(eq(runs.id, runId));
    const log = await readEvents(store.db, { afterSeq: 0, projectId, limit: 100 });
    const changed = log.find((e) => e.type === 'task.status_changed')?.data as { reason: string };
    const failed = log.find((e) => e.type === 'run.failed')?.data as { summary: string };
    for (const text of [task!.reason!, changed.reason]) {
      expect(text).toMatch(/^cannot record: a database statement failed/);
      expect(text).not.toMatch(/insert|params|secret/);
    }
    for (const text of [run!.summary!, failed.summary]) {
      expect(text.length).toBeLessThanOrEqual(2000);
      expect(text).not.toContain('\0');
    }
    await store.db.delete(projects).where(eq(projects.id, projectId));
  });
});
