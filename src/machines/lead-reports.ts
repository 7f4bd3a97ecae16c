/**
 * What a worker's report does to the run, pure: the task's new status and the intent that writes
 * it, the failure spread to its dependents, the budget marked spent, the worker freed. A report
 * about a task that was cancelled, re-queued or reassigned meanwhile changes nothing but the worker.
 */
import { propagateFailures, type Intent, type Tasks } from './lead-logic.ts';
import { freed, withoutWorker } from './lead-pool.ts';
import type { LeadContext } from './lead-types.ts';
import { faultMessage, type TaskView, type WorkerAttemptEvent, type WorkerOutcome, type WorkerReportEvent } from './types.ts';

/** The task a worker's message is about, if that worker still holds it in the same epoch. */
function heldTask(context: LeadContext, event: { key: string; agentId: string; epoch: number }): TaskView | undefined {
  const task = context.tasks[event.key];
  if (!task || task.status !== 'in_progress' || task.agentId !== event.agentId || task.epoch !== event.epoch) return undefined;
  return task;
}

/** A task's end as a worker reported it: its new view and the intent that writes it. */
function ended(task: TaskView, o: WorkerOutcome): { task: TaskView; intent: Intent } {
  const ids = { taskId: task.id, key: task.key };
  switch (o.kind) {
    case 'completed': {
      const approved = task.review?.decision === 'approved';
      const detail = approved && !o.verified ? `approved in review; not verified: the change touched the test setup (${task.review?.files.join(', ') ?? ''})` : o.detail;
      return { task: { ...task, status: 'completed' }, intent: { type: 'complete', ...ids, commit: o.commit, files: o.files, verified: o.verified, detail } };
    }
    case 'review':
      return { task: { ...task, status: 'review', review: o.review, agentId: null }, intent: { type: 'review', ...ids, review: o.review } };
    case 'blocked':
      return { task: { ...task, status: 'blocked', blockedReason: o.reason }, intent: { type: 'block', ...ids, reason: o.reason, detail: o.detail } };
    case 'budget_exhausted':
      return {
        task: { ...task, status: 'blocked', blockedReason: 'budget_exhausted' },
        intent: { type: 'block', ...ids, reason: 'budget_exhausted', detail: `budget exhausted: spent $${o.spentUsd.toFixed(4)} of $${o.budgetUsd.toFixed(4)}` },
      };
    case 'failed':
      return { task: { ...task, status: 'failed' }, intent: { type: 'fail', ...ids, detail: o.detail } };
  }
}

/** A worker reported how its task ended. */
export function onReport(context: LeadContext, event: WorkerReportEvent): Partial<LeadContext> {
  const slot = context.workers[event.agentId];
  const workers = slot?.taskKey === event.key ? { ...context.workers, [event.agentId]: freed(slot) } : context.workers;
  const task = heldTask(context, event);
  if (!task) return { workers };
  const end = ended(task, event.outcome);
  const intents: Intent[] = [end.intent];
  const o = event.outcome;
  // The first task to hit the budget records it; the run then dispatches nothing new.
  if (o.kind === 'budget_exhausted' && !context.budgetBlocked) intents.push({ type: 'budget', spentUsd: o.spentUsd, budgetUsd: o.budgetUsd });
  const spread = propagateFailures({ ...context.tasks, [task.key]: end.task });
  return {
    tasks: spread.tasks,
    workers,
    budgetBlocked: context.budgetBlocked || o.kind === 'budget_exhausted',
    queue: [...context.queue, ...intents, ...spread.intents],
  };
}

/** A worker started an attempt: the task's attempt count is written. */
export function onAttempt(context: LeadContext, event: WorkerAttemptEvent): Partial<LeadContext> {
  const task = heldTask(context, event);
  if (!task) return {};
  return {
    tasks: { ...context.tasks, [task.key]: { ...task, attempts: event.attempt } },
    queue: [...context.queue, { type: 'attempt', taskId: task.id, key: task.key, attempt: event.attempt }],
  };
}

/** A worker actor crashed (a bug, not a failed attempt): it leaves the pool and its task fails with the reason. */
export function onWorkerCrash(context: LeadContext, agentId: string, error: unknown): Partial<LeadContext> {
  const slot = context.workers[agentId];
  if (!slot) return {};
  const workers = withoutWorker(context.workers, agentId);
  const task = slot.taskKey ? context.tasks[slot.taskKey] : undefined;
  if (!task || task.status !== 'in_progress' || task.agentId !== agentId) return { workers };
  const detail = `worker ${agentId} crashed: ${faultMessage(error)}`;
  const tasks: Tasks = { ...context.tasks, [task.key]: { ...task, status: 'failed' } };
  const spread = propagateFailures(tasks);
  return { workers, tasks: spread.tasks, queue: [...context.queue, { type: 'fail', taskId: task.id, key: task.key, detail }, ...spread.intents] };
}
