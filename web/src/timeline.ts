/**
 * A task's timeline: its events from the project's log (the one the run view already holds),
 * folded into its attempts, in order. Each attempt holds its model calls (`llm.usage`), the files
 * it wrote or had refused, its test runs, the correction that led to it, the review it waited for,
 * and how it ended (a commit, a status with its reason). A retry re-queues the task and numbers its
 * attempts from 1 again: each such round is kept apart, and only the current round's attempts have
 * a diff to ask for (`…/diff?attempt=N`). Pure: no DOM, no fetch, so it is tested in Node.
 */
import type { LogEvent } from './replay.ts';

export interface ModelCall {
  seq: number;
  model: string;
  purpose: string;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  /** Null when the model is unpriced. */
  costUsd: number | null;
  durationMs: number;
}

export interface FileWritten {
  path: string;
  action: string;
  bytes: number;
}

export interface TestRun {
  seq: number;
  status: string;
  phase: string;
  /** Null when the runner's output was not understood. */
  passed: number | null;
  failed: number | null;
  total: number | null;
  failures: { name: string; message: string | null }[];
  durationMs: number;
  verified: boolean;
}

export interface Correction {
  /** The correction's number (1…maxAttempts); it makes attempt `number + 1`. */
  number: number;
  maxAttempts: number;
  status: string;
  errorSummary: string | null;
}

export interface Outcome {
  seq: number;
  status: string;
  blockedReason: string | null;
  reason: string | null;
}

export interface Attempt {
  /** 0 for the task's first round; one more after each retry. */
  round: number;
  attempt: number;
  calls: ModelCall[];
  applied: { files: FileWritten[]; explanation: string } | null;
  rejected: { reason: string; path: string | null }[];
  tests: TestRun[];
  /** The correction that led to this attempt (none for a round's first). */
  correction: Correction | null;
  review: { reason: string; files: string[] } | null;
  reviewed: { decision: string; guidance: string | null } | null;
  commit: { sha: string; message: string; files: string[] } | null;
  /** The status the task moved to after this attempt (review, completed, blocked, …). */
  outcome: Outcome | null;
}

export interface Timeline {
  attempts: Attempt[];
  /** The round whose attempts `GET …/diff?attempt=N` answers for. */
  currentRound: number;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const int = (v: unknown): number => num(v) ?? 0;
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const record = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});

/** Statuses a task leaves its attempt in: what the attempt came to. */
const ENDS: readonly string[] = ['review', 'completed', 'failed', 'blocked', 'cancelled'];

/** The attempts of the task with id `taskId`, from a project's log (in seq order). */
export function taskTimeline(events: readonly LogEvent[], taskId: string): Timeline {
  const attempts: Attempt[] = [];
  let round = 0;
  /** The attempt the next model call belongs to (a correction that starts moves it on). */
  let next = 1;
  const at = (n: number): Attempt => {
    let a = attempts.find((x) => x.round === round && x.attempt === n);
    if (!a) {
      a = { round, attempt: n, calls: [], applied: null, rejected: [], tests: [], correction: null, review: null, reviewed: null, commit: null, outcome: null };
      attempts.push(a);
      attempts.sort((x, y) => x.round - y.round || x.attempt - y.attempt);
    }
    return a;
  };
  const last = (): Attempt | undefined => attempts.filter((a) => a.round === round).at(-1);
  for (const e of events) {
    if (e.taskId !== taskId) continue;
    const d = e.data;
    const n = num(d.attempt);
    switch (e.type) {
      case 'llm.usage':
        at(next).calls.push({
          seq: e.seq,
          model: str(d.model) ?? '?',
          purpose: str(d.purpose) ?? '',
          inputTokens: int(d.inputTokens),
          outputTokens: int(d.outputTokens),
          cacheReadTokens: int(d.cacheReadTokens),
          cacheWriteTokens: int(d.cacheWriteTokens),
          costUsd: num(d.costUsd),
          durationMs: int(d.durationMs),
        });
        break;
      case 'files.applied':
        if (n === null) break;
        at(n).applied = {
          files: list(d.files).map((f) => ({ path: str(record(f).path) ?? '?', action: str(record(f).action) ?? '?', bytes: int(record(f).bytes) })),
          explanation: str(d.explanation) ?? '',
        };
        break;
      case 'files.rejected':
        if (n !== null) at(n).rejected.push({ reason: str(d.reason) ?? '', path: str(d.path) });
        break;
      case 'test.result':
        if (n === null || d.phase === 'baseline') break;
        at(n).tests.push({
          seq: e.seq,
          status: str(d.status) ?? '?',
          phase: str(d.phase) ?? 'task',
          passed: num(d.passed),
          failed: num(d.failed),
          total: num(d.total),
          failures: list(d.failures).map((f) => ({ name: str(record(f).name) ?? '?', message: str(record(f).message) })),
          durationMs: int(d.durationMs),
          verified: d.verified === true,
        });
        break;
      case 'correction.attempt': {
        if (n === null) break;
        const status = str(d.status) ?? '';
        if (status === 'started') next = n + 1;
        const made = at(n + 1);
        made.correction = { number: n, maxAttempts: int(d.maxAttempts), status, errorSummary: str(d.errorSummary) ?? made.correction?.errorSummary ?? null };
        break;
      }
      case 'task.review_requested':
        at(n ?? next).review = { reason: str(d.reason) ?? '', files: list(d.files).filter((f): f is string => typeof f === 'string') };
        break;
      case 'task.reviewed': {
        const a = last();
        if (a) a.reviewed = { decision: str(d.decision) ?? '', guidance: str(d.guidance) };
        break;
      }
      case 'commit.created': {
        const a = last();
        if (a) a.commit = { sha: str(d.sha) ?? '', message: str(d.message) ?? '', files: list(d.files).filter((f): f is string => typeof f === 'string') };
        break;
      }
      case 'task.status_changed': {
        const to = str(d.to) ?? '';
        // A retry re-queues the task: a new round, counting its attempts from 1 again.
        if (to === 'pending' && attempts.some((a) => a.round === round)) {
          round++;
          next = 1;
          break;
        }
        const a = last();
        if (a && ENDS.includes(to)) a.outcome = { seq: e.seq, status: to, blockedReason: str(d.blockedReason), reason: str(d.reason) };
        break;
      }
    }
  }
  return { attempts, currentRound: round };
}

/** The tokens of some model calls, summed (input counts cache reads and writes apart, as the API does). */
export function callTotals(calls: readonly ModelCall[]): Omit<ModelCall, 'seq' | 'model' | 'purpose'> {
  const sum = (f: (c: ModelCall) => number) => calls.reduce((s, c) => s + f(c), 0);
  return {
    inputTokens: sum((c) => c.inputTokens),
    outputTokens: sum((c) => c.outputTokens),
    cacheReadTokens: sum((c) => c.cacheReadTokens),
    cacheWriteTokens: sum((c) => c.cacheWriteTokens),
    costUsd: calls.some((c) => c.costUsd === null) ? null : sum((c) => c.costUsd ?? 0),
    durationMs: sum((c) => c.durationMs),
  };
}
