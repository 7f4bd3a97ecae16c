/**
 * The database side of the effects' injected interfaces: model answers (pay once), what
 * workers did (files, tests, corrections, commits) and what they may read. Every write goes
 * through the outbox, so each row and the event that reports it commit together.
 */
import { upsertCorrection } from '../../db/corrections.ts';
import { commitTold } from '../../db/events.ts';
import { budgetAndSpent, insertModelCall, modelCallByKey } from '../../db/model-calls.ts';
import { withDbRetry } from '../../db/retry.ts';
import { markPlanned } from '../../db/runs.ts';
import { dependencyKeys, insertTasks as insertTaskRows, taskText, type NewTaskRow } from '../../db/tasks.ts';
import { insertTestResult } from '../../db/test-results.ts';
import { coerceError, safeReason } from '../../errors.ts';
import { newId } from '../../ids.ts';
import { boundedText, storableText } from '../../safe-text.ts';
import type { Emit, Outbox } from '../../events/outbox.ts';
import type { Tx } from '../../db/client.ts';
import { event, type NewEvent, type TestPhase } from '../../events/types.ts';
import type { TaskView } from '../../machines/types.ts';
import type { BudgetReader, TaskReader, TaskText } from '../model/generate.ts';
import type { ModelCallRecord, ModelJournal } from '../model/journal.ts';
import { decodeAnswer, encodeAnswer } from './answer-codec.ts';
import type { PlanStore, PlannedTask } from '../model/plan.ts';
import type { CorrectionNote, EffectScope, WorkerRecorder } from '../worker-effects.ts';
import { transactFenced, type RunFence } from './lead-writer.ts';
import { isLeaseLost } from './leases.ts';
import { taskViewOf } from './views.ts';
import type { TestRunResult } from '../testing/run-tests.ts';

/** Longest test output kept per result row. */
export const STORED_OUTPUT_MAX = 64 * 1024;

/**
 * @param fence checked first in every write of a run's work (tests, corrections, files,
 * commits, the plan): a process that lost the run writes nothing more for it. A model call's
 * record is not fenced: it is the bill of a call already paid, idempotent by its key.
 */

/** The model's explanation in `files.applied`: a paragraph, not a novel. */
const EXPLANATION_MAX = 2_000;
/** Failing test names kept per test run (row and event). */
const FAILURES_KEPT = 20;

/** Failing tests as stored and told: at most `FAILURES_KEPT`, names and messages bounded, NUL made visible. */
function storedFailures(failures: readonly { name: string; message: string | null }[]) {
  return failures.slice(0, FAILURES_KEPT).map((f) => ({ name: boundedText(f.name, 300), message: f.message === null ? null : boundedText(f.message, 300) }));
}

/**
 * A transaction written for a run: retried on transient errors, fenced (nothing is written for a
 * run this process no longer owns), failures as short StorageErrors.
 */
/** The `test.result` event's data for a run of the test command: what its row stores, less the output and exit code. */
export function testResultSummary(result: TestRunResult, attempt: number, phase: TestPhase, verified: boolean) {
  return {
    attempt,
    status: result.status,
    passed: result.passed,
    failed: result.failed,
    errors: result.errors,
    skipped: result.skipped,
    total: result.total,
    phase,
    failures: storedFailures(result.failures),
    durationMs: Math.round(result.durationMs),
    verified,
    sandbox: result.sandbox,
  };
}

/**
 * The fence is checked last, right before the events' append and the commit: a lost lease rolls
 * back everything the transaction wrote, as a check made first would have prevented it, and the
 * run row is locked only from there to the commit. A check made first held it for the whole
 * transaction, so every write of a run (four workers', the lead's, the snapshots) waited for the
 * one before it. The order everywhere is rows, then the run row, then the append lock.
 */
export function fencedWriter(outbox: Outbox, fence?: RunFence) {
  return <T>(runId: string, fn: (tx: Tx, emit: Emit) => Promise<T>) =>
    withDbRetry(() => transactFenced(outbox, fence, runId, fn)).catch((e: unknown) => {
      if (isLeaseLost(e)) fence?.lost(runId);
      return rethrowCoerced(e);
    });
}

export function createRecords(outbox: Outbox, fence?: RunFence): ModelJournal & WorkerRecorder & TaskReader & BudgetReader & PlanStore {
  const db = outbox.store.db;
  // A failed statement reaches the effect (and from there a reason) as a short StorageError,
  // never as Drizzle's message with the whole SQL and its values (see `coerceError`).
  const write = <T>(fn: (tx: Tx, emit: Emit) => Promise<T>) => withDbRetry(() => outbox.transact(fn)).catch(rethrowCoerced);
  const runWrite = fencedWriter(outbox, fence);
  const emitOne = (e: NewEvent) =>
    runWrite(e.runId ?? '', (_tx, emit) => {
      emit(e);
      return Promise.resolve();
    });

  return {
    async find(projectId, callKey) {
      const row = await withDbRetry(() => modelCallByKey(db, projectId, callKey));
      return row ? decodeAnswer(row.response) : null;
    },

    async record(call: ModelCallRecord) {
      // One id for every try of this write (withDbRetry may replay it after a lost commit
      // acknowledgement): a row with this id is this call's own, recorded by an earlier try.
      const id = newId('call');
      const row = {
        id,
        projectId: call.projectId,
        runId: call.runId,
        taskId: call.taskId,
        agentId: call.agentId,
        callKey: call.callKey,
        purpose: call.purpose,
        model: call.model,
        requestHash: call.requestHash,
        response: encodeAnswer(call.response),
        ...call.usage,
        costUsd: call.costUsd,
        durationMs: call.durationMs,
      };
      const usage = event(
        'llm.usage',
        { model: call.model, ...call.usage, costUsd: call.costUsd, durationMs: call.durationMs, purpose: call.purpose },
        { projectId: call.projectId, runId: call.runId, taskId: call.taskId, agentId: call.agentId },
      );
      return write(async (tx, emit) => {
        if (await insertModelCall(tx, row)) {
          emit(usage);
          return call.response;
        }
        const first = await modelCallByKey(tx, call.projectId, call.callKey);
        if (!first) throw new Error(`model call ${call.callKey} conflicts with a row that is not there`);
        if (first.id === id) return call.response;
        // Another call for the same key was recorded first (two processes raced): both were
        // paid. The first answer stands, for this caller too; this one's bill is kept under a
        // key of its own, so usage and budget count it.
        if (await insertModelCall(tx, { ...row, callKey: `${call.callKey}:superseded:${id}` })) emit(usage);
        return decodeAnswer(first.response);
      });
    },

    async loadTask(taskId): Promise<TaskText> {
      const row = await withDbRetry(() => taskText(db, taskId));
      if (!row) throw new Error(`task ${taskId} not found`);
      return row;
    },

    budgetOf: (projectId) => withDbRetry(() => budgetAndSpent(db, projectId)),

    filesApplied: (scope, attempt, files, explanation) => emitOne(event('files.applied', { attempt, files, explanation: safeReason(explanation, EXPLANATION_MAX) }, scope)),

    // Reasons and paths may quote the model: stored with NUL made visible, bounded.
    filesRejected: (scope, attempt, reason, path) =>
      emitOne(event('files.rejected', path === undefined ? { attempt, reason: safeReason(reason) } : { attempt, reason: safeReason(reason), path: boundedText(path, 2048) }, scope)),

    async testResult(scope, epoch, attempt, result, verified, correction, phase = 'task') {
      await runWrite(scope.runId, async (tx, emit) => {
        // What the event reports is what the row stores, less the output and exit code.
        const summary = testResultSummary(result, attempt, phase, verified);
        await insertTestResult(tx, {
          projectId: scope.projectId,
          taskId: scope.taskId,
          runId: scope.runId,
          agentId: scope.agentId,
          epoch,
          ...summary,
          summary: storableText(result.summary),
          exitCode: result.exitCode,
          // The test effect already shows NUL as U+2400; this is the last line of defence.
          output: storableText(result.output.length > STORED_OUTPUT_MAX ? result.output.slice(-STORED_OUTPUT_MAX) : result.output),
        });
        emit(event('test.result', summary, scope));
        if (correction) await writeCorrections(tx, emit, scope, epoch, [correction]);
      });
    },

    corrections: (scope, epoch, notes) => runWrite(scope.runId, (tx, emit) => writeCorrections(tx, emit, scope, epoch, notes)),

    commitCreated: (scope, commit) =>
      runWrite(scope.runId, async (tx, emit) => {
        if (!(await commitTold(tx, scope.projectId, scope.taskId, commit.sha))) emit(event('commit.created', commit, scope));
      }),

    async savePlan(projectId, runId, planned: PlannedTask[]): Promise<TaskView[]> {
      return runWrite(runId, async (tx, emit) => {
        if (!(await markPlanned(tx, runId))) throw new Error(`run ${runId} is no longer planning`);
        const rows = await insertTasks(tx, emit, projectId, runId, planned.map((t) => ({ ...t, priority: 2 })));
        emit(event('run.planned', { tasks: planned.map((t) => t.key) }, { projectId, runId }));
        const deps = await dependencyKeys(tx, projectId);
        return rows.map((r) => taskViewOf(r, deps.get(r.id) ?? []));
      });
    },
  };
}

function rethrowCoerced(thrown: unknown): never {
  throw coerceError(thrown);
}

async function writeCorrections(tx: Tx, emit: Emit, scope: EffectScope, epoch: number, notes: CorrectionNote[]): Promise<void> {
  for (const note of notes) {
    const errorSummary = note.errorSummary === undefined ? undefined : safeReason(note.errorSummary);
    // A success keeps the summary of the failure it corrected.
    await upsertCorrection(tx, {
      projectId: scope.projectId,
      taskId: scope.taskId,
      runId: scope.runId,
      epoch,
      attempt: note.attempt,
      status: note.status,
      errorSummary: errorSummary ?? null,
    });
    const data: Extract<NewEvent, { type: 'correction.attempt' }>['data'] = {
      attempt: note.attempt,
      maxAttempts: note.maxAttempts,
      status: note.status,
    };
    if (errorSummary !== undefined) data.errorSummary = errorSummary;
    emit(event('correction.attempt', data, scope));
  }
}

export type { NewTaskRow } from '../../db/tasks.ts';

/** Inserts tasks and their dependency edges, emitting `task.created` for each (request order). */
export async function insertTasks(tx: Tx, emit: Emit, projectId: string, runId: string | null, list: NewTaskRow[]) {
  if (list.length === 0) return [];
  const { rows, ids, ordinal } = await insertTaskRows(tx, projectId, list, () => newId('tsk'));
  // Dependencies are listed by age everywhere (Task.dependsOn too), whatever the request's order.
  const byAge = (keys: string[]) => [...keys].sort((a, b) => (ordinal.get(a) ?? 0) - (ordinal.get(b) ?? 0));
  for (const t of list) {
    emit(
      event(
        'task.created',
        { key: t.key, title: t.title, agentType: t.agentType as 'backend', dependsOn: byAge(t.dependsOn) },
        { projectId, runId, taskId: ids.get(t.key)! },
      ),
    );
  }
  return rows;
}
