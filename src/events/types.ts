/**
 * The event catalogue of the README's "Events": one discriminated union. Each event is stored in the
 * `events` table in the transaction of the state change it reports, then published.
 */
import type { AgentType, BlockedReason, ReviewReason, RunStatus, TaskStatus, TestStatus } from '../machines/types.ts';

// The vocabulary is the machines' (one definition): re-exported for the event catalogue's users.
export type { AgentType, BlockedReason, ReviewReason, RunStatus, TaskReview, TaskStatus, TestStatus } from '../machines/types.ts';
export { ACTIVE_RUN_STATUSES, AGENT_TYPES, BLOCKED_REASONS, RUN_STATUSES, TASK_STATUSES, TEST_STATUSES } from '../machines/types.ts';
export type TestPhase = 'baseline' | 'task' | 'merge';
export type FileAction = 'create' | 'modify' | 'delete';

export interface Progress {
  total: number;
  pending: number;
  inProgress: number;
  /** Tasks waiting for a person's approve or reject. */
  review: number;
  completed: number;
  failed: number;
  blocked: number;
  cancelled: number;
  percent: number;
}

/** Every event type and the shape of its `data`. */
export interface EventDataMap {
  /** A run began (first event of every run). */
  'run.started': { status: RunStatus };
  /** The lead's plan was accepted and its tasks created. */
  'run.planned': { tasks: string[] };
  /** A pause was accepted while work is in flight: the run is `pausing` until that work ends. */
  'run.pausing': { status: RunStatus };
  /** The run is paused: no task in flight, no model call or test process of it running. */
  'run.paused': { status: RunStatus };
  /** A paused or blocked run continues. */
  'run.resumed': { status: RunStatus };
  'run.cancelled': { status: RunStatus };
  'run.completed': { status: RunStatus; summary: string };
  'run.blocked': { status: RunStatus; summary: string };
  'run.failed': { status: RunStatus; summary: string };
  'task.created': { key: string; title: string; agentType: AgentType; dependsOn: string[] };
  /** `reason` (not in every event) says in words why a task failed or was blocked. */
  'task.status_changed': { key: string; from: TaskStatus; to: TaskStatus; blockedReason?: BlockedReason; reason?: string };
  'task.assigned': { key: string; agentId: string };
  'agent.created': { agentId: string; agentType: AgentType | null };
  'agent.retired': { agentId: string; agentType: AgentType | null };
  'agent.state_changed': { agentId: string; state: unknown };
  'llm.usage': {
    model: string;
    inputTokens: number;
    outputTokens: number;
    cacheReadTokens: number;
    cacheWriteTokens: number;
    costUsd: number | null;
    durationMs: number;
    purpose: ModelPurpose;
  };
  /** `explanation`: the model's own words for the change (bounded, NUL made visible). */
  'files.applied': { attempt: number; files: { path: string; action: FileAction; bytes: number }[]; explanation: string };
  'files.rejected': { attempt: number; reason: string; path?: string };
  'test.result': {
    /** 0 for a baseline run (no attempt made yet). */
    attempt: number;
    status: TestStatus;
    /** Null when the runner's output was not understood (never a made-up 0). */
    passed: number | null;
    failed: number | null;
    errors: number | null;
    skipped: number | null;
    total: number | null;
    /** `baseline`: the base tree before any change; `task`: a task's attempt; `merge`: the rebased tree. */
    phase: TestPhase;
    /** Names of failing tests the output gave (at most 20), with the first assertion line. */
    failures: { name: string; message: string | null }[];
    /** Baseline only: the commit tested, and whether this is an earlier run's result for it, told again. */
    commit?: string;
    cached?: boolean;
    durationMs: number;
    verified: boolean;
    /** How the test command was confined: `bwrap` (sandboxed) or `none`. */
    sandbox: 'bwrap' | 'none';
  };
  'correction.attempt': {
    attempt: number;
    maxAttempts: number;
    status: 'started' | 'succeeded' | 'failed';
    errorSummary?: string;
  };
  'commit.created': { sha: string; message: string; files: string[] };
  'budget.exceeded': { spentUsd: number; budgetUsd: number };
  /** A task's change waits for a person: it touches protected files, deletes a test, or the project reviews everything. */
  'task.review_requested': { key: string; attempt: number; reason: ReviewReason; files: string[] };
  /** A person approved (the change merges) or rejected (discarded; corrected with the guidance, or blocked). */
  'task.reviewed': { key: string; decision: 'approved' | 'rejected'; guidance?: string };
  progress: Progress;
}

export type ModelPurpose = 'plan' | 'generate' | 'correct';

export type EventType = keyof EventDataMap;
export const EVENT_TYPES = [
  'run.started',
  'run.planned',
  'run.pausing',
  'run.paused',
  'run.resumed',
  'run.cancelled',
  'run.completed',
  'run.blocked',
  'run.failed',
  'task.created',
  'task.status_changed',
  'task.assigned',
  'agent.created',
  'agent.retired',
  'agent.state_changed',
  'llm.usage',
  'files.applied',
  'files.rejected',
  'test.result',
  'correction.attempt',
  'commit.created',
  'budget.exceeded',
  'task.review_requested',
  'task.reviewed',
  'progress',
] as const satisfies readonly EventType[];

/** An event about to be appended: no `seq` or `at` yet. */
export type NewEvent = {
  [T in EventType]: {
    type: T;
    projectId: string;
    runId?: string | null;
    taskId?: string | null;
    agentId?: string | null;
    data: EventDataMap[T];
  };
}[EventType];

/** The envelope as stored, published and sent over SSE. */
export type TroupeEvent = {
  [T in EventType]: {
    seq: number;
    type: T;
    projectId: string;
    runId?: string;
    taskId?: string;
    agentId?: string;
    at: string;
    data: EventDataMap[T];
  };
}[EventType];

/** Builds a typed event; `type` narrows `data`. */
export function event<T extends EventType>(
  type: T,
  data: EventDataMap[T],
  scope: { projectId: string; runId?: string | null; taskId?: string | null; agentId?: string | null },
): NewEvent {
  return { type, data, ...scope } as NewEvent;
}
