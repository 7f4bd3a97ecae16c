/**
 * Footprint: heap per idle worker actor and per in-flight task, with `count` actors alive, and
 * the size of persisted snapshots. Run with `--expose-gc` (npm run bench does) for steady
 * numbers. The effects are stand-ins (the real ones hold sockets and processes, not heap).
 */
import { createActor, enqueueActions, fromPromise, setup } from 'xstate';
import { leadMachine, type LeadSettings, type PersistInput, type PersistOutput } from '../src/machines/lead.ts';
import type { Job, TaskView } from '../src/machines/types.ts';
import { workerMachine } from '../src/machines/worker.ts';
import { round } from './harness.ts';

export interface FootprintResult {
  actors: number;
  idleWorkerBytes: number;
  inFlightTaskBytes: number;
  idleWorkerSnapshotBytes: number;
  busyWorkerSnapshotBytes: number;
  leadSnapshotBytes: number;
  leadTasks: number;
  leadWorkers: number;
}

const worker = workerMachine.provide({
  actors: {
    prepare: fromPromise(async () => ({ treePath: '/tmp/w' })),
    // A model call that never answers: the task stays in flight.
    generate: fromPromise(() => new Promise<never>(() => undefined)) as never,
  },
});

/** Workers report to a parent: a minimal one that spawns them and assigns them jobs. */
const pool = setup({
  types: { events: {} as { type: 'SPAWN'; count: number } | { type: 'ASSIGN_ALL'; count: number } },
  actors: { worker },
}).createMachine({
  on: {
    SPAWN: {
      actions: enqueueActions(({ enqueue, event }) => {
        for (let i = 0; i < event.count; i++) enqueue.spawnChild('worker', { id: `backend-${i}`, input: { agentId: `backend-${i}`, agentType: 'backend' } });
      }),
    },
    ASSIGN_ALL: {
      actions: enqueueActions(({ enqueue, event }) => {
        for (let i = 0; i < event.count; i++) enqueue.sendTo(`backend-${i}`, { type: 'ASSIGN', job: job(i) });
      }),
    },
  },
});

const settings: LeadSettings = {
  maxConcurrency: 32,
  maxAgents: 32,
  maxCorrections: 3,
  budgetUsd: null,
  models: { lead: 'm', backend: 'm', frontend: 'm', test: 'm' },
  workspace: '/tmp/w',
  isolation: 'shared',
  testCommand: ['true'],
  testTimeoutMs: 1000,
  sandbox: { mode: 'none', network: false },
  review: 'protected',
  protectedPaths: ['package.json'],
};

function heap(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) gc?.();
  return process.memoryUsage().heapUsed;
}

function job(i: number): Job {
  return {
    taskId: `tsk_${i}`,
    key: `task-${i}`,
    epoch: 0,
    startAttempt: 1,
    mode: 'work',
    review: null,
    guidance: null,
    settings: { projectId: 'prj', runId: 'run', workspace: '/tmp/w', isolation: 'shared' as const, testCommand: ['true'], testTimeoutMs: 1000, maxCorrections: 3, model: 'm', sandbox: { mode: 'none', network: false }, review: 'protected', protectedPaths: ['package.json'] },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

export async function footprint(count: number, leadTasks: number): Promise<FootprintResult> {
  const host = createActor(pool).start();
  const before = heap();
  host.send({ type: 'SPAWN', count });
  const idle = heap();
  const first = host.getSnapshot().children['backend-0']!;
  const idleSnapshot = JSON.stringify(first.getPersistedSnapshot()).length;
  host.send({ type: 'ASSIGN_ALL', count });
  await tick();
  await tick();
  const busy = heap();
  const busySnapshot = JSON.stringify(first.getPersistedSnapshot()).length;
  host.stop();

  // A lead with `leadTasks` tasks and a full pool, every worker waiting on its model call.
  const lead = createActor(
    leadMachine.provide({
      actors: {
        worker,
        persist: fromPromise<PersistOutput, PersistInput>(async ({ input }) => ({ results: input.intents.map(() => ({ applied: true })) })),
      },
    }),
    {
      input: {
        projectId: 'prj',
        runId: 'run',
        start: 'running',
        goal: null,
        settings,
        tasks: Array.from({ length: leadTasks }, (_, i): TaskView => ({
          id: `tsk_${i}`,
          key: `task-${i}`,
          agentType: 'backend',
          dependsOn: i >= 32 ? [`task-${i - 32}`] : [],
          priority: 2,
          ordinal: i,
          status: 'pending',
          blockedReason: null,
          epoch: 0,
          attempts: 0,
          agentId: null,
        })),
      },
    },
  ).start();
  for (let i = 0; i < 20; i++) await tick();
  const leadSnapshot = JSON.stringify(lead.getPersistedSnapshot()).length;
  const leadWorkers = Object.keys(lead.getSnapshot().context.workers).length;
  lead.stop();
  return {
    actors: count,
    idleWorkerBytes: round((idle - before) / count, 0),
    inFlightTaskBytes: round((busy - idle) / count, 0),
    idleWorkerSnapshotBytes: idleSnapshot,
    busyWorkerSnapshotBytes: busySnapshot,
    leadSnapshotBytes: leadSnapshot,
    leadTasks,
    leadWorkers,
  };
}
