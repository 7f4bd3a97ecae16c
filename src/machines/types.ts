/**
 * Types shared by the lead and worker statecharts and the effects they invoke. Pure data:
 * no I/O, no clocks, nothing but what an event or an effect's output carries.
 */

// The vocabulary, defined once: every other module (events, database, HTTP schemas, effects)
// takes its types and lists from here.
export const AGENT_TYPES = ['backend', 'frontend', 'test'] as const;
export type AgentType = (typeof AGENT_TYPES)[number];
export const TASK_STATUSES = ['pending', 'in_progress', 'review', 'completed', 'failed', 'blocked', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const BLOCKED_REASONS = ['attempts_exhausted', 'budget_exhausted', 'dependency_failed', 'merge_conflict', 'review_rejected'] as const;
export type BlockedReason = (typeof BLOCKED_REASONS)[number];
export const RUN_STATUSES = ['planning', 'running', 'pausing', 'paused', 'completed', 'blocked', 'cancelled', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
/** A run in one of these is active: it has a lead (at most one per project; the database's partial index says the same). */
export const ACTIVE_RUN_STATUSES = ['planning', 'running', 'pausing', 'paused'] as const satisfies readonly RunStatus[];
export const TEST_STATUSES = ['passed', 'failed', 'error', 'timeout', 'no_tests'] as const;
export type TestStatus = (typeof TEST_STATUSES)[number];

/** A task's key: what users and the model name a task by (also its branch name, encoded when git needs it). */
export const TASK_KEY = /^[A-Za-z0-9._-]{1,64}$/;

/** A worker's id: its agent type and a number never reused in the run (`backend-1`, `test-2`). */
export function workerId(type: AgentType, n: number): string {
  return `${type}-${n}`;
}

/** The parts of a worker id, or null for anything else (the lead's `lead`, a foreign string). */
export function parseWorkerId(id: string): { type: AgentType; n: number } | null {
  const m = /^(backend|frontend|test)-(\d+)$/.exec(id);
  return m ? { type: m[1] as AgentType, n: Number(m[2]) } : null;
}
export type Isolation = 'worktree' | 'shared';
/** How the test command is confined (README "Security model"). */
export interface SandboxSettings {
  mode: 'bwrap' | 'none';
  network: boolean;
}
/** When a task's change waits for a person before it lands. */
export type ReviewPolicy = 'protected' | 'always' | 'never';
export type ReviewReason = 'protected_paths' | 'tests_deleted' | 'always';

/** Why a task waits (or waited) for a person, and what the person decided. */
export interface TaskReview {
  reason: ReviewReason;
  /** The files that made it need review (for `always`: every file the task changed). */
  files: string[];
  /** The attempt whose passing tests led to the review. */
  attempt: number;
  /** The project's own, unmodified test setup passed (so an approval completes `verified`). */
  verified: boolean;
  /** Set by approve/reject; the task is then `pending` until a worker lands or revises it. */
  decision?: 'approved' | 'rejected';
}

/**
 * What a worker does with a job: `work` generates, tests and commits; `land` merges a change a
 * person approved; `revise` undoes a rejected attempt and, with guidance, corrects it.
 */
export type JobMode = 'work' | 'land' | 'revise';

/**
 * The test command's run on the base tree before any change (the run's preflight): which tests
 * already failed, so a worker is not asked to fix what it did not break.
 */
export interface Baseline {
  /** The commit tested (worktree mode); null for a shared workspace's files as they were. */
  commit: string | null;
  status: TestStatus;
  /** Names of the tests that failed there (empty: none failed, or the output named none). */
  failing: string[];
  /** One line: "2 failed, 10 passed". */
  summary: string;
}

/** What a worker needs to know about the project to do a task; copied into every job. */
export interface JobSettings {
  projectId: string;
  runId: string;
  workspace: string;
  isolation: Isolation;
  testCommand: string[];
  testTimeoutMs: number;
  maxCorrections: number;
  model: string;
  sandbox: SandboxSettings;
  review: ReviewPolicy;
  /** Globs of files whose change (or deletion) sends the task to review. */
  protectedPaths: string[];
  /** The run's baseline (absent in jobs of runs from before baselines). */
  baseline?: Baseline | null;
}

/** One task handed to a worker. Title and description are loaded by the effects, not carried. */
export interface Job {
  taskId: string;
  key: string;
  /** Retry generation of the task: model answers are recorded per (task, epoch, attempt). */
  epoch: number;
  /** Generation to start with: 1, or the last recorded attempt when a run is rebuilt. */
  startAttempt: number;
  mode: JobMode;
  /** `land` and `revise`: the review the person decided. */
  review: TaskReview | null;
  /** `revise`: the person's guidance (null: no correction, the task ends `review_rejected`). */
  guidance: string | null;
  settings: JobSettings;
}

/** The lead's view of a task (kept small: it is in every persisted lead snapshot). */
export interface TaskView {
  id: string;
  key: string;
  agentType: AgentType;
  dependsOn: string[];
  priority: number;
  ordinal: number;
  status: TaskStatus;
  blockedReason: BlockedReason | null;
  epoch: number;
  attempts: number;
  agentId: string | null;
  /** Set while the task waits for review, and after a decision until a worker acts on it. */
  review?: TaskReview | null;
  /** A rejection's guidance, carried to the revising worker. */
  guidance?: string | null;
}

/** A fault from an effect, as the machines see it. `fatal`: no retry inside the run can fix it. */
export interface FaultLike {
  message?: string;
  fatal?: boolean;
}

export function isFatalFault(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as FaultLike).fatal === true;
}

export function faultMessage(error: unknown): string {
  if (typeof error === 'object' && error !== null && typeof (error as FaultLike).message === 'string') {
    return (error as { message: string }).message;
  }
  return String(error);
}

/** How a worker's task ended, reported to the lead. */
export type WorkerOutcome =
  /** `detail`: why a completed task is not verified, when there is more to say than the test status. */
  | { kind: 'completed'; commit: string | null; files: string[]; verified: boolean; detail?: string }
  | { kind: 'blocked'; reason: 'attempts_exhausted' | 'merge_conflict' | 'review_rejected'; detail: string }
  /** Tests passed, but the change waits for a person (worktree mode: committed on its branch). */
  | { kind: 'review'; review: TaskReview }
  | { kind: 'budget_exhausted'; spentUsd: number; budgetUsd: number }
  | { kind: 'failed'; detail: string };

export interface WorkerReportEvent {
  type: 'WORKER.REPORT';
  agentId: string;
  taskId: string;
  key: string;
  epoch: number;
  outcome: WorkerOutcome;
}

export interface WorkerAttemptEvent {
  type: 'WORKER.ATTEMPT';
  agentId: string;
  taskId: string;
  key: string;
  epoch: number;
  attempt: number;
}

/** Tests decide a task: passed, or no tests found for an agent other than the test agent (unverified). */
export function testsAccepted(status: TestStatus, agentType: AgentType): boolean {
  return status === 'passed' || (status === 'no_tests' && agentType !== 'test');
}
