/**
 * What the worker's effects take and give back: one input and one output type per invoked effect
 * (`src/actors/worker-effects.ts` implements them). Pure data, re-exported by `worker.ts`.
 */
import type { AgentType, Job, TaskReview, TestStatus } from './types.ts';

/** Why the previous attempt failed: the correction prompt is built from it. */
export interface AttemptFailure {
  kind: 'invalid_answer' | 'files_rejected' | 'tests_failed' | 'model_error' | 'review_rejected';
  summary: string;
  /** Failing test output, already cut from the middle when long. */
  excerpt?: string;
}

export interface PrepareInput { agentId: string; job: Job }
export interface PrepareOutput { treePath: string }

export interface GenerateInput {
  agentId: string;
  agentType: AgentType;
  job: Job;
  attempt: number;
  treePath: string;
  failure: AttemptFailure | null;
  /** The answer of the previous attempt, for "here is what you wrote". */
  previousCallKey: string | null;
}
export type GenerateOutput =
  | { kind: 'proposal'; callKey: string; fileCount: number }
  | { kind: 'invalid'; callKey: string; reason: string }
  | { kind: 'budget_exhausted'; spentUsd: number; budgetUsd: number };

export interface ApplyInput { agentId: string; job: Job; attempt: number; treePath: string; callKey: string }
export type ApplyOutput = { kind: 'applied'; files: string[] } | { kind: 'rejected'; reason: string };

export interface TestInput { agentId: string; agentType: AgentType; job: Job; attempt: number; treePath: string }
export interface TestOutput {
  status: TestStatus;
  summary: string;
  excerpt: string;
  /**
   * The run failed, but only tests that already failed on the base tree before any change (the
   * baseline) failed again: the attempt broke nothing, and the task completes, unverified.
   */
  preexisting?: string[];
}

export interface CorrectionInput {
  agentId: string;
  job: Job;
  /** The correction being started, 1…maxCorrections. */
  correction: number;
  /** Why the attempt before it failed. */
  failure: AttemptFailure;
}
export interface GiveUpInput { agentId: string; job: Job; correction: number; failure: AttemptFailure }

/** Where the last attempt's work was kept (worktree mode: a commit on the task's branch), or null. */
export interface GiveUpOutput {
  keptOn: string | null;
  /** Why the work could not be kept (the task is blocked all the same). */
  keepError?: string;
}

export interface CommitInput {
  agentId: string;
  job: Job;
  attempt: number;
  treePath: string;
  files: string[];
  /** The tests passed (not only "no tests found"). */
  verified: boolean;
}
export type CommitOutput =
  | { kind: 'committed'; sha: string | null; files: string[] }
  | { kind: 'conflict'; detail: string }
  | { kind: 'review'; review: TaskReview };

/** Merges (worktree) or commits in place (shared) a change a person approved. */
export interface LandInput { agentId: string; job: Job }
export type LandOutput = Exclude<CommitOutput, { kind: 'review' }>;

/** Undoes the attempt a person rejected; `callKey`: that attempt's answer, for the correction prompt. */
export interface DiscardInput { agentId: string; job: Job; treePath: string }
export interface DiscardOutput { callKey: string }

/** A cancelled job: its tree is removed (worktree mode; the branch stays). */
export interface ReleaseInput { agentId: string; job: Job }
