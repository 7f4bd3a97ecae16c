/**
 * The lead's `persist` effect: a batch of intents becomes one transaction of guarded updates
 * (`WHERE status = <expected>`) plus the events that report them. A guard that does not match
 * is a lost race: the intent is not applied and the lead learns the status the database has.
 * Terminal run statuses are final: nothing moves a completed, cancelled or failed run again.
 */
import { and, eq, inArray, notInArray, sql } from 'drizzle-orm';
import { fromPromise } from 'xstate';
import type { Tx } from '../../db/client.ts';
import { statusCounts } from '../../db/queries.ts';
import { withDbRetry } from '../../db/retry.ts';
import { agents, runs, taskDependencies, tasks } from '../../db/schema.ts';
import type { Emit, Outbox } from '../../events/outbox.ts';
import { event, type EventType } from '../../events/types.ts';
import type { Intent, IntentResult } from '../../machines/lead-logic.ts';
import type { PersistInput, PersistOutput } from '../../machines/lead.ts';
import type { BlockedReason, RunStatus, TaskStatus } from '../../machines/types.ts';
import { progressFrom } from './views.ts';

const FINAL_RUN: RunStatus[] = ['completed', 'cancelled', 'failed'];
const RUN_EVENT: Record<RunStatus, EventType | null> = {
  planning: null,
  running: 'run.resumed',
  pausing: 'run.paused',
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

export function createPersist(outbox: Outbox) {
  return fromPromise<PersistOutput, PersistInput>(({ input }) =>
    // Idempotent by construction (guarded updates): safe to repeat after a lost connection.
    withDbRetry(() => outbox.transact((tx, emit) => persistBatch(tx, emit, input))),
  );
}

export async function persistBatch(tx: Tx, emit: Emit, input: PersistInput): Promise<PersistOutput> {
  const scope = { projectId: input.projectId, runId: input.runId };
  const results: IntentResult[] = [];
  let taskChanged = false;
  for (const intent of input.intents) {
    const result = await applyIntent(tx, emit, scope, intent);
    if (result.applied && 'key' in intent && intent.type !== 'attempt') taskChanged = true;
    results.push(result);
  }
  if (taskChanged) {
    const counts = await statusCounts(tx, [scope.projectId]);
    emit(event('progress', progressFrom(counts.get(scope.projectId)), scope));
  }
  return { results };
}

/** Moves a task from one of `from` to `to` (row-locked first, so `from` in the event is true). */
async function transition(
  tx: Tx,
  taskId: string,
  from: readonly TaskStatus[],
  set: Partial<typeof tasks.$inferInsert> & { status: TaskStatus },
  extraGuard?: ReturnType<typeof sql>,
): Promise<{ applied: boolean; from: TaskStatus | null; status: TaskStatus | null }> {
  const [current] = await tx.select({ status: tasks.status }).from(tasks).where(eq(tasks.id, taskId)).for('update');
  if (!current) return { applied: false, from: null, status: null };
  const was = current.status as TaskStatus;
  if (!from.includes(was)) return { applied: false, from: was, status: was };
  const where = extraGuard ? and(eq(tasks.id, taskId), extraGuard) : eq(tasks.id, taskId);
  const updated = await tx.update(tasks).set(set).where(where).returning({ id: tasks.id });
  if (updated.length === 0) return { applied: false, from: was, status: was };
  return { applied: true, from: was, status: set.status };
}

async function applyIntent(tx: Tx, emit: Emit, scope: Scope, intent: Intent): Promise<IntentResult> {
  switch (intent.type) {
    case 'assign': {
      // The database, not only the lead's memory, refuses a task whose dependencies are not all completed.
      const depsDone = sql`not exists (select 1 from ${taskDependencies} d join ${tasks} dt on dt.id = d.depends_on_id
        where d.task_id = ${intent.taskId} and dt.status <> 'completed')`;
      const r = await transition(tx, intent.taskId, ['pending'], { status: 'in_progress', agentId: intent.agentId, startedAt: new Date(), completedAt: null }, depsDone);
      if (!r.applied) return r;
      if (intent.newAgent) {
        await tx
          .insert(agents)
          .values({ projectId: scope.projectId, runId: scope.runId, agentId: intent.agentId, kind: 'worker', agentType: intent.agentType })
          .onConflictDoNothing();
        emit(event('agent.created', { agentId: intent.agentId, agentType: intent.agentType }, { ...scope, agentId: intent.agentId }));
      }
      emitStatus(emit, scope, intent.taskId, intent.key, 'pending', 'in_progress', { agentId: intent.agentId });
      emit(event('task.assigned', { key: intent.key, agentId: intent.agentId }, { ...scope, taskId: intent.taskId, agentId: intent.agentId }));
      return r;
    }
    case 'retire': {
      await tx
        .update(agents)
        .set({ retiredAt: new Date() })
        .where(and(eq(agents.runId, scope.runId), eq(agents.agentId, intent.agentId)));
      emit(event('agent.retired', { agentId: intent.agentId, agentType: intent.agentType }, { ...scope, agentId: intent.agentId }));
      return { applied: true };
    }
    case 'attempt': {
      const updated = await tx
        .update(tasks)
        .set({ attempts: intent.attempt })
        .where(and(eq(tasks.id, intent.taskId), eq(tasks.status, 'in_progress')))
        .returning({ id: tasks.id });
      return { applied: updated.length > 0 };
    }
    case 'complete': {
      const r = await transition(tx, intent.taskId, ['in_progress'], {
        status: 'completed',
        completedAt: new Date(),
        commit: intent.commit,
        filesChanged: intent.files,
        verified: intent.verified,
        blockedReason: null,
        reason: intent.verified ? null : 'completed without verification: the test command found no tests',
      });
      if (r.applied) emitStatus(emit, scope, intent.taskId, intent.key, 'in_progress', 'completed');
      return r;
    }
    case 'block': {
      const from: TaskStatus[] = intent.reason === 'dependency_failed' ? ['pending'] : ['in_progress'];
      const r = await transition(tx, intent.taskId, from, { status: 'blocked', blockedReason: intent.reason, reason: intent.detail });
      if (r.applied) emitStatus(emit, scope, intent.taskId, intent.key, r.from!, 'blocked', { blockedReason: intent.reason, reason: intent.detail });
      return r;
    }
    case 'fail': {
      const r = await transition(tx, intent.taskId, ['in_progress'], { status: 'failed', reason: intent.detail });
      if (r.applied) emitStatus(emit, scope, intent.taskId, intent.key, 'in_progress', 'failed', { reason: intent.detail });
      return r;
    }
    case 'cancel': {
      const r = await transition(tx, intent.taskId, ['pending', 'in_progress'], { status: 'cancelled', reason: 'cancelled' });
      if (r.applied) emitStatus(emit, scope, intent.taskId, intent.key, r.from!, 'cancelled');
      return r;
    }
    case 'requeue': {
      const set: Partial<typeof tasks.$inferInsert> & { status: TaskStatus } = {
        status: 'pending',
        blockedReason: null,
        reason: null,
        agentId: null,
        startedAt: null,
        completedAt: null,
      };
      if (intent.newEpoch) {
        set.epoch = sql`${tasks.epoch} + 1` as unknown as number;
        set.attempts = 0;
        if (intent.guidance) set.guidance = intent.guidance;
      }
      const r = await transition(tx, intent.taskId, ['failed', 'blocked', 'cancelled'], set);
      if (r.applied) emitStatus(emit, scope, intent.taskId, intent.key, r.from!, 'pending');
      return r;
    }
    case 'release': {
      const r = await transition(tx, intent.taskId, ['in_progress'], { status: 'pending', agentId: null });
      if (r.applied) emitStatus(emit, scope, intent.taskId, intent.key, 'in_progress', 'pending');
      return r;
    }
    case 'run':
      return setRunStatus(tx, emit, scope, intent.status, intent.summary);
    case 'budget':
      emit(event('budget.exceeded', { spentUsd: intent.spentUsd, budgetUsd: intent.budgetUsd }, scope));
      return { applied: true };
  }
}

/** Moves the run (never out of a final status) and emits its event. */
export async function setRunStatus(tx: Tx, emit: Emit, scope: Scope, status: RunStatus, summary?: string): Promise<IntentResult> {
  const final = FINAL_RUN.includes(status) || status === 'blocked';
  const updated = await tx
    .update(runs)
    .set({ status, updatedAt: new Date(), ...(final ? { endedAt: new Date(), summary: summary ?? null } : { endedAt: null }) })
    .where(and(eq(runs.id, scope.runId), notInArray(runs.status, FINAL_RUN), status === 'running' ? inArray(runs.status, ['pausing', 'paused', 'blocked', 'running']) : undefined))
    .returning({ id: runs.id });
  if (updated.length === 0) return { applied: false };
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
