/**
 * The lead's `persist` effect: a batch of intents becomes one transaction of guarded updates
 * (`WHERE status = <expected>`) plus the events that report them. A guard that does not match
 * is a lost race: the intent is not applied and the lead learns the status the database has.
 * Terminal run statuses are final: nothing moves a completed, cancelled or failed run again.
 */
import { fromPromise } from 'xstate';
import { insertAgent, retireAgent } from '../../db/agents.ts';
import type { Tx } from '../../db/client.ts';
import { withDbRetry } from '../../db/retry.ts';
import { setRunStatus as writeRunStatus } from '../../db/runs.ts';
import {
  dependenciesCompleted,
  dependencyKeys,
  nextEpoch,
  setTaskAttempt,
  statusCounts,
  tasksOf,
  transitionTask as transition,
  type TaskSet,
  type Transition,
} from '../../db/tasks.ts';
import type { Emit, Outbox } from '../../events/outbox.ts';
import type { RowFence } from '../../events/log.ts';
import { safeReason } from '../../errors.ts';
import { event, type EventType } from '../../events/types.ts';
import { isLeaseLost } from './leases.ts';
import type { Intent, IntentResult } from '../../machines/lead-logic.ts';
import type { PersistInput, PersistOutput } from '../../machines/lead.ts';
import type { BlockedReason, RunStatus, TaskReview, TaskStatus, TaskView } from '../../machines/types.ts';
import { progressFrom, taskViewOf } from './views.ts';

const RUN_EVENT: Record<RunStatus, EventType | null> = {
  planning: null,
  running: 'run.resumed',
  pausing: 'run.pausing',
  paused: 'run.paused',
  completed: 'run.completed',
  blocked: 'run.blocked',
  cancelled: 'run.cancelled',
  failed: 'run.failed',
};

interface Scope {
  projectId: string;
  runId: string;
}

/** Writes that must commit in the same transaction as a batch of the lead's intents. */
export interface Companion {
  write(tx: Tx, emit: Emit): Promise<void>;
  /** Called once the batch committed (`true`) or gave up (`false`). */
  done(committed: boolean): void;
}

/** The lease check of every batch a lead writes, and what happens when it fails. */
export interface RunFence {
  /**
   * In the batch's transaction, after its writes and before its events' append: throws
   * `LeaseLost` (rolling back what it wrote) unless this process still owns the run, and locks
   * the run row until commit, so a takeover waits (see `fencedWriter` in records.ts).
   */
  check(tx: Tx, runId: string): Promise<void>;
  /** The run is another process's now: stop its lead here (aborting its effects); nothing was written. */
  lost(runId: string): void;
  /**
   * The same check in two halves, when the fence offers them: throws `LeaseLost` now when this
   * process gave the run up, and otherwise returns the check the transaction's events' append
   * makes (`RowFence`: one statement fewer per write).
   */
  rowFence?(runId: string): RowFence;
}

/** Runs `fn` in a transaction fenced by the run's lease: in its append when the fence can, else last (see `fencedWriter` in records.ts). */
export function transactFenced<T>(outbox: Outbox, fence: RunFence | undefined, runId: string, fn: (tx: Tx, emit: Emit) => Promise<T>): Promise<T> {
  const inAppend = runId ? fence?.rowFence?.(runId) : undefined;
  return outbox.transact(async (tx, emit) => {
    const output = await fn(tx, emit);
    if (runId && !inAppend) await fence?.check(tx, runId);
    return output;
  }, inAppend);
}

/**
 * @param companion taken before each batch: the runtime writes the lead's snapshot and pending
 * state-change events in the batch's transaction, so the restore point always matches the task
 * rows it wrote (a restore re-runs this very batch, which is idempotent) and
 * `agent.state_changed {state: finishing}` comes before `run.completed`, not after.
 * @param fence checked in every batch, before it commits: the one place the lead's writes are
 * fenced by the run's lease (not each caller).
 */
export function createPersist(
  outbox: Outbox,
  companion: (input: PersistInput) => Promise<Companion | undefined> = () => Promise.resolve(undefined),
  fence?: RunFence,
) {
  return fromPromise<PersistOutput, PersistInput>(async ({ input }) => {
    // The effect starts inside the lead's transition; let it finish (and its state be observed)
    // before taking what is pending.
    await Promise.resolve();
    const extra = await companion(input);
    let committed = false;
    try {
      // Idempotent by construction (guarded updates): safe to repeat after a lost connection.
      const output = await withDbRetry(() =>
        transactFenced(outbox, fence, input.runId, async (tx, emit) => {
          await extra?.write(tx, emit);
          return persistBatch(tx, emit, input);
        }),
      );
      committed = true;
      return output;
    } catch (e) {
      if (isLeaseLost(e)) fence?.lost(input.runId);
      throw e;
    } finally {
      extra?.done(committed);
    }
  });
}

export async function persistBatch(tx: Tx, emit: Emit, input: PersistInput): Promise<PersistOutput> {
  const scope = { projectId: input.projectId, runId: input.runId };
  const results: IntentResult[] = [];
  let taskChanged = false;
  for (const intent of input.intents) {
    if (intent.type === 'run' && intent.knownKeys) {
      // A run ends only when the lead knows every task of the project: tasks added meanwhile
      // (by any process) keep it going.
      const added = await unknownTasks(tx, input.projectId, intent.knownKeys);
      if (added.length > 0) return { results: [...results, { applied: false }], added };
    }
    const result = await applyIntent(tx, emit, scope, intent);
    if (result.applied && !result.replayed && 'key' in intent && intent.type !== 'attempt') taskChanged = true;
    results.push({ applied: result.applied, status: result.status });
  }
  if (taskChanged) {
    const counts = await statusCounts(tx, [scope.projectId]);
    emit(event('progress', progressFrom(counts.get(scope.projectId)), scope));
  }
  return { results };
}

const fresh = (r: Transition) => r.applied && !r.replayed;

async function applyIntent(tx: Tx, emit: Emit, scope: Scope, raw: Intent): Promise<IntentResult & { replayed?: boolean }> {
  const intent = withSafeWords(raw);
  switch (intent.type) {
    case 'assign': {
      // The database, not only the lead's memory, refuses a task whose dependencies are not all completed.
      const depsDone = dependenciesCompleted(intent.taskId);
      const r = await transition(
        tx,
        intent.taskId,
        ['pending'],
        { status: 'in_progress', agentId: intent.agentId, startedAt: new Date(), completedAt: null },
        (row) => row.status === 'in_progress' && row.agentId === intent.agentId,
        depsDone,
      );
      if (!fresh(r)) return r;
      if (intent.newAgent) {
        const created = await insertAgent(tx, { projectId: scope.projectId, runId: scope.runId, agentId: intent.agentId, agentType: intent.agentType });
        if (created) emit(event('agent.created', { agentId: intent.agentId, agentType: intent.agentType }, { ...scope, agentId: intent.agentId }));
      }
      emitStatus(emit, scope, intent.taskId, intent.key, 'pending', 'in_progress', { agentId: intent.agentId });
      emit(event('task.assigned', { key: intent.key, agentId: intent.agentId }, { ...scope, taskId: intent.taskId, agentId: intent.agentId }));
      return r;
    }
    case 'retire': {
      if (await retireAgent(tx, scope.runId, intent.agentId)) emit(event('agent.retired', { agentId: intent.agentId, agentType: intent.agentType }, { ...scope, agentId: intent.agentId }));
      return { applied: true };
    }
    case 'attempt': {
      return { applied: await setTaskAttempt(tx, intent.taskId, intent.attempt) };
    }
    case 'complete': {
      const r = await transition(tx, intent.taskId, ['in_progress'], {
        status: 'completed',
        completedAt: new Date(),
        commit: intent.commit,
        filesChanged: intent.files,
        verified: intent.verified,
        blockedReason: null,
        reason: intent.detail ?? (intent.verified ? null : 'completed without verification: the test command found no tests'),
      }, (row) => row.status === 'completed');
      if (fresh(r)) emitStatus(emit, scope, intent.taskId, intent.key, 'in_progress', 'completed', intent.detail ? { reason: intent.detail } : {});
      return r;
    }
    case 'review': {
      const r = await transition(tx, intent.taskId, ['in_progress'], { status: 'review', review: intent.review, agentId: null, reason: reviewWords(intent.review) }, (row) => row.status === 'review');
      if (!fresh(r)) return r;
      emitStatus(emit, scope, intent.taskId, intent.key, 'in_progress', 'review', { reason: reviewWords(intent.review) });
      const { reason, files, attempt } = intent.review;
      emit(event('task.review_requested', { key: intent.key, attempt, reason, files }, { ...scope, taskId: intent.taskId }));
      return r;
    }
    case 'decide': {
      const set: TaskSet = { status: 'pending', review: intent.review, agentId: null, reason: null };
      if (intent.guidance) set.guidance = intent.guidance;
      const r = await transition(tx, intent.taskId, ['review'], set, (row) => row.status === 'pending');
      if (!fresh(r)) return r;
      const decision = intent.review.decision ?? 'approved';
      emit(event('task.reviewed', { key: intent.key, decision, ...(intent.guidance ? { guidance: intent.guidance } : {}) }, { ...scope, taskId: intent.taskId }));
      emitStatus(emit, scope, intent.taskId, intent.key, 'review', 'pending');
      return r;
    }
    case 'block': {
      const from: TaskStatus[] = intent.reason === 'dependency_failed' ? ['pending'] : ['in_progress'];
      const r = await transition(tx, intent.taskId, from, { status: 'blocked', blockedReason: intent.reason, reason: intent.detail }, (row) => row.status === 'blocked' && row.blockedReason === intent.reason);
      if (fresh(r)) emitStatus(emit, scope, intent.taskId, intent.key, r.from!, 'blocked', { blockedReason: intent.reason, reason: intent.detail });
      return r;
    }
    case 'fail': {
      const r = await transition(tx, intent.taskId, ['in_progress'], { status: 'failed', reason: intent.detail }, (row) => row.status === 'failed');
      if (fresh(r)) emitStatus(emit, scope, intent.taskId, intent.key, 'in_progress', 'failed', { reason: intent.detail });
      return r;
    }
    case 'cancel': {
      const r = await transition(tx, intent.taskId, ['pending', 'in_progress', 'review'], { status: 'cancelled', reason: 'cancelled' }, (row) => row.status === 'cancelled');
      if (fresh(r)) emitStatus(emit, scope, intent.taskId, intent.key, r.from!, 'cancelled');
      return r;
    }
    case 'requeue': {
      const set: TaskSet = {
        status: 'pending',
        blockedReason: null,
        reason: null,
        agentId: null,
        startedAt: null,
        completedAt: null,
      };
      if (intent.newEpoch) {
        set.epoch = nextEpoch();
        set.attempts = 0;
        set.review = null;
        if (intent.guidance) set.guidance = intent.guidance;
      }
      const r = await transition(tx, intent.taskId, ['failed', 'blocked', 'cancelled'], set, (row) => row.status === 'pending');
      if (fresh(r)) emitStatus(emit, scope, intent.taskId, intent.key, r.from!, 'pending');
      return r;
    }
    case 'release': {
      const r = await transition(tx, intent.taskId, ['in_progress'], { status: 'pending', agentId: null }, (row) => row.status === 'pending');
      if (fresh(r)) emitStatus(emit, scope, intent.taskId, intent.key, 'in_progress', 'pending');
      return r;
    }
    case 'run':
      return setRunStatus(tx, emit, scope, intent.status, intent.summary);
    case 'budget':
      emit(event('budget.exceeded', { spentUsd: intent.spentUsd, budgetUsd: intent.budgetUsd }, scope));
      return { applied: true };
  }
}

function reviewWords(review: TaskReview): string {
  const files = review.files.slice(0, 20).join(', ');
  switch (review.reason) {
    case 'protected_paths':
      return `waiting for review: the change touches files that decide how the tests run (${files})`;
    case 'tests_deleted':
      return `waiting for review: the change deletes test files (${files})`;
    case 'always':
      return 'waiting for review: this project reviews every change';
  }
}

async function unknownTasks(tx: Tx, projectId: string, knownKeys: string[]): Promise<TaskView[]> {
  const rows = await tasksOf(tx, projectId);
  const known = new Set(knownKeys);
  const fresh = rows.filter((r) => !known.has(r.key));
  if (fresh.length === 0) return [];
  const deps = await dependencyKeys(tx, projectId);
  return fresh.map((r) => taskViewOf(r, deps.get(r.id) ?? []));
}

/**
 * The intent with its reason (`detail`) and run summary as they may be stored and shown: an
 * error's message can carry anything (a driver's statement, a model's text, NUL), so it is made
 * a bounded, storable sentence here, where every reason the lead writes passes.
 */
function withSafeWords(intent: Intent): Intent {
  const out = { ...intent } as Intent & { detail?: unknown; summary?: unknown };
  if (typeof out.detail === 'string') out.detail = safeReason(out.detail);
  if (typeof out.summary === 'string') out.summary = safeReason(out.summary);
  return out;
}

/** Moves the run (never out of a final status: see `db/runs.ts`) and emits its event. */
export async function setRunStatus(tx: Tx, emit: Emit, scope: Scope, status: RunStatus, summary?: string): Promise<IntentResult> {
  if (!(await writeRunStatus(tx, scope.runId, status, summary))) return { applied: false };
  const type = RUN_EVENT[status];
  if (type === 'run.completed' || type === 'run.blocked' || type === 'run.failed') {
    emit(event(type, { status, summary: summary ?? '' }, scope));
  } else if (type) {
    emit(event(type, { status }, scope));
  }
  return { applied: true };
}

function emitStatus(
  emit: Emit,
  scope: Scope,
  taskId: string,
  key: string,
  from: TaskStatus,
  to: TaskStatus,
  extra: { blockedReason?: BlockedReason; reason?: string; agentId?: string } = {},
): void {
  const data: Extract<Parameters<typeof event<'task.status_changed'>>[1], object> = { key, from, to };
  if (extra.blockedReason) data.blockedReason = extra.blockedReason;
  if (extra.reason) data.reason = extra.reason.slice(0, 2000);
  emit(event('task.status_changed', data, { ...scope, taskId, agentId: extra.agentId ?? null }));
}
