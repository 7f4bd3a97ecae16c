/**
 * What a person's command or the run's end does to the lead's tasks and workers, pure: cancel a
 * task or the run, retry, decide a review, raise the budget, add tasks, and the final batches of a
 * run that finishes, is cancelled or breaks. Each returns the context's new values and, where
 * workers must stop, the commands for them.
 */
import { allCompleted, decideReview, isDead, propagateFailures, requeue, summarize, type Intent, type Tasks } from './lead-logic.ts';
import { cancelAll, freed } from './lead-pool.ts';
import type { Decision, LeadContext, LeadInput } from './lead-types.ts';
import type { TaskView } from './types.ts';

/** A task that has not ended: a cancel reaches it. */
export function isOpen(task: TaskView | undefined): boolean {
  return task?.status === 'pending' || task?.status === 'in_progress' || task?.status === 'review';
}

/** A failed, blocked or cancelled task can go again (with what blocks it, see `requeue`). */
export function isRetryable(task: TaskView | undefined): boolean {
  return task !== undefined && isDead(task.status);
}

export function toTasks(list: TaskView[]): Tasks {
  return Object.fromEntries(list.map((t) => [t.key, t]));
}

/** The lead's context as a run starts (or is rebuilt from its task rows). */
export function initialContext(input: LeadInput): LeadContext {
  return {
    projectId: input.projectId,
    runId: input.runId,
    start: input.start,
    goal: input.goal,
    settings: input.settings,
    tasks: toTasks(input.tasks),
    workers: {},
    workerSeq: { backend: 0, frontend: 0, test: 0, ...input.workerSeq },
    queue: [],
    batch: [],
    budgetBlocked: false,
    summary: null,
    baseline: null,
  };
}

/** Adds tasks the lead does not know yet (never overwrites its own view of a known one). */
export function addTasks(context: LeadContext, list: TaskView[]): Partial<LeadContext> {
  const fresh = list.filter((t) => !context.tasks[t.key]);
  if (fresh.length === 0) return {};
  const spread = propagateFailures({ ...context.tasks, ...toTasks(fresh) });
  return { tasks: spread.tasks, queue: [...context.queue, ...spread.intents] };
}

/** Pending tasks behind a dead one (e.g. cancelled while no run was active) are blocked. */
export function blockBehindDead(context: LeadContext): Partial<LeadContext> {
  const spread = propagateFailures(context.tasks);
  return spread.intents.length === 0 ? {} : { tasks: spread.tasks, queue: [...context.queue, ...spread.intents] };
}

/** One task cancelled: its worker (if it has the job) told to cancel, its dependents blocked. */
export function cancelTask(context: LeadContext, key: string): Decision {
  const task = context.tasks[key];
  if (!task) return { context: {}, commands: [] };
  const workers = { ...context.workers };
  const slot = task.agentId ? workers[task.agentId] : undefined;
  const commands: Decision['commands'] = [];
  if (task.status === 'in_progress' && slot?.taskKey === task.key) {
    if (slot.working) commands.push({ type: 'cancel', agentId: slot.agentId });
    workers[slot.agentId] = freed(slot);
  }
  const spread = propagateFailures({ ...context.tasks, [task.key]: { ...task, status: 'cancelled' } });
  return {
    context: { tasks: spread.tasks, workers, queue: [...context.queue, { type: 'cancel', taskId: task.id, key: task.key }, ...spread.intents] },
    commands,
  };
}

/** A person retries a task: it (and what blocks it at the root, and what waits behind it) is re-queued. */
export function retryTask(context: LeadContext, key: string, guidance: string | null | undefined): Partial<LeadContext> {
  const r = requeue(context.tasks, key, guidance);
  // A person chose to try again: let the budget check speak for itself on the next call.
  return { tasks: r.tasks, queue: [...context.queue, ...r.intents], budgetBlocked: false };
}

/** Approve or reject: the task goes back to the queue with the decision (see `decideReview`). */
export function reviewTask(context: LeadContext, key: string, decision: 'approved' | 'rejected', guidance: string | null): Partial<LeadContext> {
  const r = decideReview(context.tasks, key, decision, guidance);
  return { tasks: r.tasks, queue: [...context.queue, ...r.intents] };
}

/** The budget was raised: every task blocked by it goes back to the queue. */
export function requeueBudgetBlocked(context: LeadContext): Partial<LeadContext> {
  let tasks = context.tasks;
  const intents: Intent[] = [];
  for (const t of Object.values(context.tasks)) {
    if (t.status !== 'blocked' || t.blockedReason !== 'budget_exhausted') continue;
    const r = requeue(tasks, t.key, undefined);
    tasks = r.tasks;
    intents.push(...r.intents);
  }
  return { tasks, queue: [...context.queue, ...intents], budgetBlocked: false };
}

/** Run cancelled: every worker's work stopped, every task that has not ended cancelled, in one last batch. */
export function cancelRun(context: LeadContext): Decision {
  const pool = cancelAll(context.workers);
  const tasks = { ...context.tasks };
  const intents: Intent[] = [];
  for (const t of Object.values(tasks)) {
    if (!isOpen(t)) continue;
    tasks[t.key] = { ...t, status: 'cancelled' };
    intents.push({ type: 'cancel', taskId: t.id, key: t.key });
  }
  return {
    context: { tasks, workers: pool.workers, batch: [...context.queue, ...intents, { type: 'run', status: 'cancelled' }], queue: [] },
    commands: pool.commands,
  };
}

/** The run broke: the workers stopped, in-flight tasks handed back to the queue, the run failed with `summary`. */
export function failRun(context: LeadContext, summary: string): Decision {
  const pool = cancelAll(context.workers);
  const tasks = { ...context.tasks };
  const intents: Intent[] = [];
  for (const t of Object.values(tasks)) {
    if (t.status !== 'in_progress') continue;
    tasks[t.key] = { ...t, status: 'pending', agentId: null };
    intents.push({ type: 'release', taskId: t.id, key: t.key });
  }
  return {
    context: { tasks, workers: pool.workers, summary, batch: [...intents, { type: 'run', status: 'failed', summary }], queue: [] },
    commands: pool.commands,
  };
}

/** Nothing more can run: the run ends completed (every task did) or blocked, if the project has no other task. */
export function finishRun(context: LeadContext): Partial<LeadContext> {
  const summary = summarize(context.tasks, context.budgetBlocked);
  const status = allCompleted(context.tasks) ? 'completed' : 'blocked';
  return { summary, batch: [{ type: 'run', status, summary, knownKeys: Object.keys(context.tasks) }] };
}
