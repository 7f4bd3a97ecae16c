/**
 * The lead's worker pool, pure: which worker takes a task (an idle one of its type reused, a new
 * one created, an idle one of another type retired to make room), when a worker actor is spawned,
 * stopped, given its job or told to cancel. The machine (`lead.ts`) only enacts the commands these
 * functions return (`spawnChild`, `stopChild`, `sendTo`).
 */
import type { Intent, IntentResult, Tasks, WorkerSeq, WorkerSlot, Workers } from './lead-logic.ts';
import type { Decision, LeadContext, WorkerCommand } from './lead-types.ts';
import { workerId, type AgentType, type Job, type TaskView } from './types.ts';

export interface PoolLimits {
  maxConcurrency: number;
  maxAgents: number;
}

/** Idle workers (no task reserved), of one type or of any, in id order (`backend-2` before `backend-10`). */
function idleOf(workers: Workers, type: AgentType | null): WorkerSlot[] {
  return Object.values(workers)
    .filter((w) => w.taskKey === null && (type === null || w.agentType === type))
    .sort((a, b) => a.agentId.localeCompare(b.agentId, 'en', { numeric: true }));
}

/** The worker a task of `type` goes to, and the idle worker retired to make room for it (if any). */
export type WorkerChoice = { worker: WorkerSlot; retired: WorkerSlot | null; workerSeq: WorkerSeq } | null;

/**
 * An idle worker of the task's type is reused; otherwise a new one is made while the pool is below
 * `maxAgents`; otherwise an idle worker of another type is retired for it. Null: every worker is
 * busy (a task of another type may still fit). A new worker's number is never reused in the run.
 */
export function chooseWorker(workers: Workers, workerSeq: WorkerSeq, type: AgentType, maxAgents: number): WorkerChoice {
  const reused = idleOf(workers, type)[0];
  if (reused) return { worker: reused, retired: null, workerSeq };
  let retired: WorkerSlot | null = null;
  if (Object.keys(workers).length >= maxAgents) {
    retired = idleOf(workers, null)[0] ?? null;
    if (!retired) return null;
  }
  const seq = { ...workerSeq, [type]: (workerSeq[type] ?? 0) + 1 };
  const worker: WorkerSlot = { agentId: workerId(type, seq[type]), agentType: type, taskKey: null, created: false, spawned: false, working: false };
  return { worker, retired, workerSeq: seq };
}

/** A worker that no longer holds a task: free for the next one. */
export function freed(slot: WorkerSlot): WorkerSlot {
  return { ...slot, taskKey: null, working: false };
}

/** Every worker freed; the ones that were sent a job are told to cancel it. */
export function cancelAll(workers: Workers): { workers: Workers; commands: WorkerCommand[] } {
  const next: Workers = {};
  const commands: WorkerCommand[] = [];
  for (const slot of Object.values(workers)) {
    if (slot.working) commands.push({ type: 'cancel', agentId: slot.agentId });
    next[slot.agentId] = freed(slot);
  }
  return { workers: next, commands };
}

/**
 * After a batch of intents committed: the workers whose assignment now holds are spawned (first
 * job) and sent their job; retired ones are stopped. An intent that lost a race with another writer
 * takes the database's word; a task found `in_progress` under another agent is left over from
 * before a restart (only this lead dispatches its run's tasks), with nothing running it: it goes
 * back to the queue.
 */
export function startWorkers(context: LeadContext, results: IntentResult[]): Decision {
  const tasks: Tasks = { ...context.tasks };
  const workers: Workers = { ...context.workers };
  const releases: Intent[] = [];
  const commands: WorkerCommand[] = [];
  context.batch.forEach((intent, i) => {
    const result = results[i] ?? { applied: false };
    if (intent.type === 'retire') {
      commands.push({ type: 'stop', agentId: intent.agentId });
      return;
    }
    if (!('key' in intent)) return;
    const task = tasks[intent.key];
    if (!result.applied) {
      if (task && result.status) tasks[intent.key] = { ...task, status: result.status };
      if (intent.type === 'assign' && workers[intent.agentId]?.taskKey === intent.key) workers[intent.agentId] = { ...workers[intent.agentId]!, taskKey: null };
      if (task && intent.type === 'assign' && result.status === 'in_progress') {
        tasks[intent.key] = { ...task, status: 'pending', agentId: null };
        releases.push({ type: 'release', taskId: task.id, key: task.key });
      }
      return;
    }
    if (intent.type !== 'assign') return;
    const slot = workers[intent.agentId];
    if (!slot) return;
    const stillOurs = task?.status === 'in_progress' && task.agentId === intent.agentId;
    if (!slot.spawned) commands.push({ type: 'spawn', agentId: intent.agentId, agentType: intent.agentType });
    workers[intent.agentId] = { ...slot, created: slot.created || intent.newAgent, spawned: true, working: stillOurs };
    if (stillOurs) commands.push({ type: 'assign', agentId: intent.agentId, job: jobFor(context, task) });
  });
  return { context: { tasks, workers, batch: [], queue: [...context.queue, ...releases] }, commands };
}

/** A worker actor crashed (a bug, not a failed attempt): it leaves the pool; its task's fate is the caller's. */
export function withoutWorker(workers: Workers, agentId: string): Workers {
  const next = { ...workers };
  delete next[agentId];
  return next;
}

/** The job a worker is sent for a task: what to do (work, land, revise) and the project's settings. */
export function jobFor(context: LeadContext, task: TaskView): Job {
  const s = context.settings;
  const decision = task.review?.decision;
  return {
    taskId: task.id,
    key: task.key,
    epoch: task.epoch,
    startAttempt: Math.max(1, task.attempts),
    mode: decision === 'approved' ? 'land' : decision === 'rejected' ? 'revise' : 'work',
    review: task.review ?? null,
    guidance: decision === 'rejected' ? (task.guidance ?? null) : null,
    settings: {
      projectId: context.projectId,
      runId: context.runId,
      workspace: s.workspace,
      isolation: s.isolation,
      testCommand: s.testCommand,
      testTimeoutMs: s.testTimeoutMs,
      maxCorrections: s.maxCorrections,
      model: s.models[task.agentType],
      sandbox: s.sandbox,
      review: s.review,
      protectedPaths: s.protectedPaths,
      baseline: context.baseline ?? null,
    },
  };
}
