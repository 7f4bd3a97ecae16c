/**
 * What the worker tells its lead, and why an attempt failed: pure functions from the worker's
 * context and an effect's output to the report (`WORKER.REPORT`, `WORKER.ATTEMPT`) or to the
 * failure the correction prompt is built from, and the worker's state by name. The statechart
 * (`worker.ts`) only picks which.
 */
import { faultMessage, type Job, type WorkerAttemptEvent, type WorkerOutcome, type WorkerReportEvent } from './types.ts';
import type { AttemptFailure, CommitOutput, GenerateOutput, GiveUpOutput, TestOutput } from './worker-effects.ts';

/** The part of the worker's context a report is made from. */
export interface ReportingContext {
  agentId: string;
  job: Job | null;
  attempt: number;
  failure: AttemptFailure | null;
  tested: TestOutput | null;
}

export function jobOf(context: { job: Job | null }): Job {
  if (!context.job) throw new Error('worker has no job');
  return context.job;
}

export function reportOf(context: ReportingContext, outcome: WorkerOutcome): WorkerReportEvent {
  const j = jobOf(context);
  return { type: 'WORKER.REPORT', agentId: context.agentId, taskId: j.taskId, key: j.key, epoch: j.epoch, outcome };
}

export function attemptOf(context: ReportingContext): WorkerAttemptEvent {
  const j = jobOf(context);
  return { type: 'WORKER.ATTEMPT', agentId: context.agentId, taskId: j.taskId, key: j.key, epoch: j.epoch, attempt: context.attempt };
}

/** An effect threw: the job ends, the task fails with the reason. */
export function faulted(error: unknown): WorkerOutcome {
  return { kind: 'failed', detail: faultMessage(error) };
}

/** Why a task whose only failing tests failed before any change completes unverified. */
function preexistingDetail(tested: TestOutput | null): { detail?: string } {
  const names = tested?.preexisting ?? [];
  if (names.length === 0) return {};
  return { detail: `not verified: only tests that already failed before any change still fail (${names.slice(0, 5).join('; ')}${names.length > 5 ? '; …' : ''})` };
}

/** The tested change is committed: verified only if the tests passed (not "no tests", not the baseline's). */
export function committed(context: ReportingContext, out: Extract<CommitOutput, { kind: 'committed' }>): WorkerOutcome {
  return { kind: 'completed', commit: out.sha, files: out.files, verified: context.tested?.status === 'passed', ...preexistingDetail(context.tested) };
}

/** An approved change landed: it was tested before the review, verified only if the review says so. */
export function landed(context: ReportingContext, out: Extract<CommitOutput, { kind: 'committed' }>): WorkerOutcome {
  return { kind: 'completed', commit: out.sha, files: out.files, verified: jobOf(context).review?.verified ?? false };
}

export function conflicted(out: Extract<CommitOutput, { kind: 'conflict' }>): WorkerOutcome {
  return { kind: 'blocked', reason: 'merge_conflict', detail: out.detail };
}

export function overBudget(out: Extract<GenerateOutput, { kind: 'budget_exhausted' }>): WorkerOutcome {
  return { kind: 'budget_exhausted', spentUsd: out.spentUsd, budgetUsd: out.budgetUsd };
}

export const REJECTED_WITHOUT_GUIDANCE: WorkerOutcome = {
  kind: 'blocked',
  reason: 'review_rejected',
  detail: 'rejected in review: the change was discarded',
};

/** Where a blocked task's last attempt went, as the end of its reason. */
function keptWords(out: GiveUpOutput): string {
  if (out.keptOn) return ` (the last attempt's work is kept on branch ${out.keptOn})`;
  if (out.keepError) return ` (the last attempt's work could not be kept: ${out.keepError})`;
  return '';
}

/** No correction left: the task is blocked, its reason names the last failure and where the work went. */
export function exhausted(context: ReportingContext, out: GiveUpOutput): WorkerOutcome {
  return {
    kind: 'blocked',
    reason: 'attempts_exhausted',
    detail: `${context.attempt} attempt(s) failed; last: ${context.failure?.summary ?? 'unknown'}${keptWords(out)}`,
  };
}

// ── why an attempt failed (output data, not faults: each leads to a correction if one is left) ──

export function invalidAnswer(out: Extract<GenerateOutput, { kind: 'invalid' }>): AttemptFailure {
  return { kind: 'invalid_answer', summary: out.reason };
}

export function modelError(error: unknown): AttemptFailure {
  return { kind: 'model_error', summary: `model call failed: ${faultMessage(error)}` };
}

export function filesRefused(reason: string): AttemptFailure {
  return { kind: 'files_rejected', summary: `files refused: ${reason}` };
}

export function testsFailed(out: TestOutput): AttemptFailure {
  return { kind: 'tests_failed', summary: out.summary, excerpt: out.excerpt };
}

export function reviewRejected(job: Job): AttemptFailure {
  return {
    kind: 'review_rejected',
    summary: `A person reviewed your change and rejected it; it has been undone. Their guidance: ${job.guidance ?? ''}`,
  };
}

/** The failure a correction or a give-up is about (always set by then; the fallback keeps the types honest). */
export function lastFailure(context: ReportingContext): AttemptFailure {
  return context.failure ?? { kind: 'model_error', summary: 'unknown failure' };
}

/**
 * The worker's state as events and views name it (`agent.state_changed`, an actor's `state`): the
 * state itself — `generating`, `idle` — without the `working` parent that only groups transitions.
 */
export function workerStateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return String(value);
  const entries: [string, unknown][] = Object.entries(value);
  const [parent, child] = entries[0] ?? ['idle', undefined];
  return child === undefined ? parent : workerStateName(child);
}
