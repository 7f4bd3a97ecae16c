/**
 * The lead's task graph, pure: the intents it writes, how a failure spreads to dependents, how a
 * retry or a review decision brings tasks back, and the run's summary. Functions take the lead's
 * context pieces and return new values plus the intents the writer must persist. Which worker
 * takes which task is in `lead-dispatch.ts` and `lead-pool.ts`; what a report or a person's
 * command does, in `lead-reports.ts` and `lead-control.ts`.
 */
import type { AgentType, BlockedReason, RunStatus, TaskReview, TaskStatus, TaskView } from './types.ts';

/** Something the lead decided that must be written (guarded) before it counts. */
export type Intent =
  | { type: 'assign'; taskId: string; key: string; agentId: string; agentType: AgentType; newAgent: boolean }
  | { type: 'retire'; agentId: string; agentType: AgentType }
  | { type: 'attempt'; taskId: string; key: string; attempt: number }
  | { type: 'complete'; taskId: string; key: string; commit: string | null; files: string[]; verified: boolean; detail?: string }
  /** Tests passed; the change waits for a person. */
  | { type: 'review'; taskId: string; key: string; review: TaskReview }
  /** A person decided: the task goes back to the queue for a worker to land or revise it. */
  | { type: 'decide'; taskId: string; key: string; review: TaskReview; guidance: string | null }
  | { type: 'block'; taskId: string; key: string; reason: BlockedReason; detail: string }
  | { type: 'fail'; taskId: string; key: string; detail: string }
  | { type: 'cancel'; taskId: string; key: string }
  | { type: 'requeue'; taskId: string; key: string; newEpoch: boolean; guidance?: string | null }
  | { type: 'release'; taskId: string; key: string }
  /** `knownKeys` (finishing only): the run may end only if the project has no other task. */
  | { type: 'run'; status: RunStatus; summary?: string; knownKeys?: string[] }
  | { type: 'budget'; spentUsd: number; budgetUsd: number };

/** What the writer found for one intent: applied, and the task's status after the batch. */
export interface IntentResult {
  applied: boolean;
  status?: TaskStatus | null;
}

export interface WorkerSlot {
  agentId: string;
  agentType: AgentType;
  /** Task reserved for or worked on by this worker. */
  taskKey: string | null;
  /** The agent row and `agent.created` event exist. */
  created: boolean;
  /** The child actor exists. */
  spawned: boolean;
  /** The worker has been sent the job (it can be told to CANCEL). */
  working: boolean;
}

export type Tasks = Record<string, TaskView>;
export type Workers = Record<string, WorkerSlot>;
export type WorkerSeq = Record<AgentType, number>;

const FINISHED: ReadonlySet<TaskStatus> = new Set(['failed', 'blocked', 'cancelled']);

export function isDead(status: TaskStatus): boolean {
  return FINISHED.has(status);
}

export function inFlight(tasks: Tasks): number {
  let n = 0;
  for (const t of Object.values(tasks)) if (t.status === 'in_progress') n++;
  return n;
}

/** Keys of tasks that depend (directly or not) on `key`. */
export function dependentsOf(tasks: Tasks, key: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>([key]);
  const queue = [key];
  while (queue.length > 0) {
    const current = queue.shift()!;
    for (const t of Object.values(tasks)) {
      if (!seen.has(t.key) && t.dependsOn.includes(current)) {
        seen.add(t.key);
        out.push(t.key);
        queue.push(t.key);
      }
    }
  }
  return out;
}

/**
 * A failed, blocked or cancelled task blocks every pending task that depends on it, down the
 * whole chain (`dependency_failed`).
 */
export function propagateFailures(tasks: Tasks): { tasks: Tasks; intents: Intent[] } {
  const next = { ...tasks };
  const intents: Intent[] = [];
  let changed = true;
  while (changed) {
    changed = false;
    for (const t of Object.values(next)) {
      if (t.status !== 'pending') continue;
      const dead = t.dependsOn.find((d) => next[d] && isDead(next[d].status));
      if (dead === undefined) continue;
      next[t.key] = { ...t, status: 'blocked', blockedReason: 'dependency_failed' };
      intents.push({ type: 'block', taskId: t.id, key: t.key, reason: 'dependency_failed', detail: `dependency ${dead} did not complete` });
      changed = true;
    }
  }
  return { tasks: next, intents };
}

/** Dead tasks upstream of `key` whose own dependencies are all alive: what blocks it at the root. */
export function deadRoots(tasks: Tasks, key: string): string[] {
  const roots = new Set<string>();
  const seen = new Set<string>();
  const visit = (k: string) => {
    for (const d of tasks[k]?.dependsOn ?? []) {
      if (seen.has(d)) continue;
      seen.add(d);
      const dep = tasks[d];
      if (!dep || !isDead(dep.status)) continue;
      const before = roots.size;
      visit(d);
      // A dead dependency with nothing dead above it is a root of the blockage.
      if (roots.size === before && !dep.dependsOn.some((x) => tasks[x] && isDead(tasks[x].status))) roots.add(d);
    }
  };
  visit(key);
  return [...roots];
}

/**
 * Re-queues `key` (a failed, blocked or cancelled task) with a fresh epoch, and every task blocked
 * behind it whose dependencies are no longer dead. A task blocked behind a dead dependency cannot
 * run alone: the dead tasks at the root of its blockage are re-queued with it.
 */
export function requeue(tasks: Tasks, key: string, guidance: string | null | undefined): { tasks: Tasks; intents: Intent[] } {
  const target = tasks[key];
  if (!target || !isDead(target.status)) return { tasks, intents: [] };
  const next: Tasks = { ...tasks };
  const intents: Intent[] = [];
  const fresh = (k: string, g: string | null | undefined) => {
    const t = next[k]!;
    next[k] = { ...t, status: 'pending', blockedReason: null, epoch: t.epoch + 1, attempts: 0, agentId: null, review: null };
    intents.push({ type: 'requeue', taskId: t.id, key: k, newEpoch: true, guidance: g });
  };
  for (const root of deadRoots(tasks, key)) fresh(root, undefined);
  fresh(key, guidance);
  // Tasks behind the re-queued ones come back in dependency order, each once none of its
  // dependencies is dead.
  const behind = new Set(intents.flatMap((i) => ('key' in i ? dependentsOf(tasks, i.key) : [])));
  let changed = true;
  while (changed) {
    changed = false;
    for (const k of behind) {
      const t = next[k]!;
      if (t.status !== 'blocked' || t.blockedReason !== 'dependency_failed') {
        behind.delete(k);
        continue;
      }
      if (t.dependsOn.some((d) => next[d] && isDead(next[d].status))) continue;
      next[k] = { ...t, status: 'pending', blockedReason: null, agentId: null };
      intents.push({ type: 'requeue', taskId: t.id, key: k, newEpoch: false });
      behind.delete(k);
      changed = true;
    }
  }
  return { tasks: next, intents };
}

export function allCompleted(tasks: Tasks): boolean {
  return Object.values(tasks).every((t) => t.status === 'completed');
}

/**
 * A person decided about a task in review: it goes back to the queue (its dependencies are
 * done) with the decision, for a worker to land (approved) or undo and maybe correct (rejected).
 */
export function decideReview(tasks: Tasks, key: string, decision: 'approved' | 'rejected', guidance: string | null): { tasks: Tasks; intents: Intent[] } {
  const task = tasks[key];
  if (task?.status !== 'review' || !task.review) return { tasks, intents: [] };
  const review: TaskReview = { ...task.review, decision };
  const kept = decision === 'rejected' ? guidance : null;
  return {
    tasks: { ...tasks, [key]: { ...task, status: 'pending', agentId: null, review, guidance: kept ?? task.guidance ?? null } },
    intents: [{ type: 'decide', taskId: task.id, key, review, guidance: kept }],
  };
}

/** One sentence for the run's `summary`. */
export function summarize(tasks: Tasks, budgetBlocked: boolean): string {
  const all = Object.values(tasks);
  const done = all.filter((t) => t.status === 'completed').length;
  if (done === all.length) return `all ${all.length} task(s) completed`;
  const waiting = all.filter((t) => t.status === 'review').sort((a, b) => a.ordinal - b.ordinal);
  const review = waiting.length > 0 ? `waiting for review (approve or reject): ${waiting.slice(0, 10).map((t) => t.key).join(', ')}${waiting.length > 10 ? ', …' : ''}; ` : '';
  const stuck = all
    .filter((t) => t.status !== 'completed')
    .sort((a, b) => a.ordinal - b.ordinal)
    .slice(0, 10)
    .map((t) => `${t.key} (${t.blockedReason ?? t.status})`);
  const more = all.length - done > 10 ? ', …' : '';
  const why = budgetBlocked ? 'budget exhausted; ' : '';
  return `${why}${review}${done} of ${all.length} task(s) completed; not completed: ${stuck.join(', ')}${more}`;
}
