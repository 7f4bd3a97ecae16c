/**
 * Which task goes out next, pure: ready tasks (pending, every dependency completed) by priority
 * then age, placed on workers (`lead-pool.ts` chooses which) while fewer than `maxConcurrency` are
 * in flight.
 */
import { inFlight, type Intent, type Tasks, type WorkerSeq, type Workers } from './lead-logic.ts';
import { chooseWorker, type PoolLimits } from './lead-pool.ts';
import type { LeadContext } from './lead-types.ts';
import type { TaskView } from './types.ts';

/** Pending tasks whose dependencies all completed, by priority then age. */
export function readyTasks(tasks: Tasks): TaskView[] {
  const ready: TaskView[] = [];
  for (const t of Object.values(tasks)) {
    if (t.status !== 'pending') continue;
    if (t.dependsOn.every((d) => tasks[d]?.status === 'completed')) ready.push(t);
  }
  return ready.sort((a, b) => a.priority - b.priority || a.ordinal - b.ordinal);
}

export interface DispatchPlan {
  intents: Intent[];
  tasks: Tasks;
  workers: Workers;
  workerSeq: WorkerSeq;
}

/** Places ready tasks on workers, at most `maxConcurrency` in flight; `intents` empty: nothing to dispatch. */
export function planDispatch(tasks: Tasks, workers: Workers, workerSeq: WorkerSeq, limits: PoolLimits): DispatchPlan {
  const intents: Intent[] = [];
  let slots = limits.maxConcurrency - inFlight(tasks);
  if (slots <= 0) return { intents, tasks, workers, workerSeq };
  const ready = readyTasks(tasks);
  if (ready.length === 0) return { intents, tasks, workers, workerSeq };

  const nextTasks = { ...tasks };
  const nextWorkers = { ...workers };
  let nextSeq = workerSeq;
  for (const task of ready) {
    if (slots <= 0) break;
    const choice = chooseWorker(nextWorkers, nextSeq, task.agentType, limits.maxAgents);
    if (!choice) continue; // every worker busy: a task of another type may still fit
    const { worker, retired } = choice;
    nextSeq = choice.workerSeq;
    if (retired) {
      delete nextWorkers[retired.agentId];
      if (retired.created) intents.push({ type: 'retire', agentId: retired.agentId, agentType: retired.agentType });
    }
    nextWorkers[worker.agentId] = { ...worker, taskKey: task.key };
    nextTasks[task.key] = { ...task, status: 'in_progress', agentId: worker.agentId };
    intents.push({ type: 'assign', taskId: task.id, key: task.key, agentId: worker.agentId, agentType: worker.agentType, newAgent: !worker.created });
    slots--;
  }
  return { intents, tasks: nextTasks, workers: nextWorkers, workerSeq: nextSeq };
}

export function limitsOf(context: LeadContext): PoolLimits {
  return { maxConcurrency: context.settings.maxConcurrency, maxAgents: context.settings.maxAgents };
}

/** The lead's dispatch plan now; `intents` empty when the budget is spent or nothing fits. */
export function dispatchNow(context: LeadContext): DispatchPlan {
  const none = { intents: [], tasks: context.tasks, workers: context.workers, workerSeq: context.workerSeq };
  return context.budgetBlocked ? none : planDispatch(context.tasks, context.workers, context.workerSeq, limitsOf(context));
}
