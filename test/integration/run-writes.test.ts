/**
 * Writes of a run through the real database. A worker's records (test results, corrections,
 * files, commits) are refused in their own transaction once another process owns the run, and
 * the runtime hears that the run is lost. Every reason the lead writes (a task's `reason`, a
 * run's `summary`, and the events that carry them) is a bounded sentence a person can read:
 * never a database statement with its values, never NUL (which Postgres would refuse).
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { persistBatch } from '../../src/actors/runtime/lead-writer.ts';
import { Leases } from '../../src/actors/runtime/leases.ts';
import { createRecords } from '../../src/actors/runtime/records.ts';
import type { Store } from '../../src/db/client.ts';
import { projects, runs, tasks, testResults } from '../../src/db/schema.ts';
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

const result = {
  status: 'passed' as const,
  passed: 1,
  failed: 0,
  errors: 0,
  skipped: 0,
  total: 1,
  failures: [],
  exitCode: 0,
  signal: null,
  durationMs: 5,
  output: 'ok',
  outputBytes: 2,
  truncated: false,
  sandbox: 'none' as const,
  summary: '1 passed',
};

describe('worker records of a run', () => {
  it('are written while this process owns the run, and refused (nothing written, the loss reported) once another does', async () => {
    const leases = new Leases(store, 30_000, { owner: 'fence-test-a' });
    const lost: string[] = [];
    const records = createRecords(new Outbox(store, bus), { check: (tx, runId) => leases.fence(tx, runId), lost: (runId) => lost.push(runId) });
    const projectId = newId('prj');
    const runId = newId('run');
    const taskId = newId('tsk');
    await store.db.insert(projects).values({ id: projectId, name: 'fence', workspace: '/tmp/fence', testCommand: ['true'], config: {} });
    await store.db.insert(runs).values({ id: runId, projectId, status: 'running', ...leases.fresh() });
    await store.db.insert(tasks).values({ id: taskId, projectId, key: 't', title: 't', description: '', agentType: 'backend', priority: 2, status: 'in_progress' });
    const scope = { projectId, runId, taskId, agentId: 'backend-1' };

    await records.testResult(scope, 0, 1, result, true);
    await records.filesApplied(scope, 1, [{ path: 'a.txt', action: 'create', bytes: 1 }], 'x');
    // A landing replayed after a crash reports its commit again: told once.
    await records.commitCreated(scope, { sha: 'c0ffee', message: 'm', files: ['a.txt'] });
    await records.commitCreated(scope, { sha: 'c0ffee', message: 'm', files: ['a.txt'] });
    const written = await readEvents(store.db, { afterSeq: 0, projectId, limit: 100 });
    expect(written.map((e) => e.type)).toEqual(['test.result', 'files.applied', 'commit.created']);

    await store.db.update(runs).set({ owner: 'fence-test-b' }).where(eq(runs.id, runId));
    await expect(records.testResult(scope, 0, 2, result, true)).rejects.toMatchObject({ name: 'LeaseLost' });
    await expect(records.filesApplied(scope, 2, [], '')).rejects.toMatchObject({ name: 'LeaseLost' });
    await expect(records.commitCreated(scope, { sha: 'abc', message: 'm', files: [] })).rejects.toMatchObject({ name: 'LeaseLost' });
    await expect(records.corrections(scope, 0, [{ attempt: 1, maxAttempts: 3, status: 'started' }])).rejects.toMatchObject({ name: 'LeaseLost' });
    expect(lost).toEqual([runId, runId, runId, runId]);
    expect((await readEvents(store.db, { afterSeq: 0, projectId, limit: 100 })).map((e) => e.type)).toEqual(['test.result', 'files.applied', 'commit.created']);
    expect(await store.db.select().from(testResults).where(eq(testResults.taskId, taskId))).toHaveLength(1);
    await store.db.delete(projects).where(eq(projects.id, projectId));
  });
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
