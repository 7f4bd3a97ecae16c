/** The JSON shapes of the README's "HTTP API" and "Events" that the dashboard reads (a subset of each). */

export type RunStatus = 'planning' | 'running' | 'pausing' | 'paused' | 'completed' | 'blocked' | 'cancelled' | 'failed';
export type TaskStatus = 'pending' | 'in_progress' | 'review' | 'completed' | 'failed' | 'blocked' | 'cancelled';

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number | null;
}

export interface Progress {
  total: number;
  pending: number;
  inProgress: number;
  review: number;
  completed: number;
  failed: number;
  blocked: number;
  cancelled: number;
  percent: number;
}

export interface Project {
  id: string;
  name: string;
  workspace: string;
  testCommand: string[];
  goal: string | null;
  config: { budgetUsd: number | null; maxConcurrency: number; review: string };
  status: 'idle' | RunStatus;
  progress: Progress;
  usage: Usage;
  createdAt: string;
}

export interface Review {
  reason: 'protected_paths' | 'tests_deleted' | 'always';
  files: string[];
  attempt: number;
  verified: boolean;
  decision?: 'approved' | 'rejected';
}

export interface Task {
  id: string;
  key: string;
  title: string;
  description: string;
  agentType: string;
  dependsOn: string[];
  status: TaskStatus;
  blockedReason: string | null;
  reason: string | null;
  verified: boolean | null;
  agentId: string | null;
  attempts: number;
  guidance: string | null;
  commit: string | null;
  filesChanged: string[];
  review: Review | null;
}

export interface TestResult {
  attempt: number;
  status: string;
  passed: number | null;
  failed: number | null;
  total: number | null;
  phase: 'baseline' | 'task' | 'merge';
  durationMs: number;
  verified: boolean;
  output: string;
}

export interface TaskDetail extends Task {
  testResults: TestResult[];
  usage: Usage;
  /** The test run on the base tree the task was judged against (null before any). */
  baseline?: Baseline | null;
}

/** Contract §2 task detail `baseline`: what the tests said before any change. */
export interface Baseline {
  commit: string | null;
  status: string;
  passed: number | null;
  failed: number | null;
  total: number | null;
  /** Tests already failing on the base tree. */
  failing: string[];
  summary: string | null;
  createdAt: string;
}

export interface Run {
  id: string;
  status: RunStatus;
  startedAt: string;
  endedAt: string | null;
  summary: string | null;
}

export interface UsageReport {
  totals: Usage;
}

export interface TroupeEvent {
  seq: number;
  type: string;
  projectId: string;
  runId?: string | null;
  taskId?: string | null;
  agentId?: string;
  at: string;
  data: Record<string, unknown>;
}

/** Every event type of the README's "Events" (EventSource needs a listener per named event). */
export const EVENT_TYPES = [
  'run.started', 'run.pausing', 'run.paused', 'run.resumed', 'run.cancelled', 'run.planned', 'run.completed', 'run.blocked', 'run.failed',
  'task.created', 'task.status_changed', 'task.assigned', 'agent.created', 'agent.retired', 'agent.state_changed', 'llm.usage',
  'files.applied', 'files.rejected', 'test.result', 'correction.attempt', 'commit.created', 'tool.called', 'task.review_requested',
  'task.reviewed', 'merge.completed', 'merge.conflict', 'budget.exceeded', 'progress',
] as const;

/** Run states in which a run is still going (one at a time per project). */
export const ACTIVE_RUN: readonly string[] = ['planning', 'running', 'pausing', 'paused'];

export interface ActorView {
  id: string;
  kind: 'lead' | 'worker';
  agentType?: string;
  machine: string;
  machineVersion?: number;
  state: unknown;
  status?: string;
  taskId?: string;
  taskKey?: string;
  attempt?: number;
  updatedAt?: string;
}
