/**
 * The lead's types: its input, context and events, what its effects (preflight, plan, persist)
 * take and give back, and the shape of a decision its pure logic returns. Re-exported by `lead.ts`.
 */
import type { Intent, IntentResult, Tasks, WorkerSeq, Workers } from './lead-logic.ts';
import type {
  AgentType,
  Baseline,
  Isolation,
  Job,
  ReviewPolicy,
  SandboxSettings,
  TaskView,
  WorkerAttemptEvent,
  WorkerReportEvent,
} from './types.ts';

export interface LeadSettings {
  maxConcurrency: number;
  maxAgents: number;
  maxCorrections: number;
  budgetUsd: number | null;
  models: Record<AgentType | 'lead', string>;
  workspace: string;
  isolation: Isolation;
  testCommand: string[];
  testTimeoutMs: number;
  sandbox: SandboxSettings;
  review: ReviewPolicy;
  protectedPaths: string[];
}

export interface LeadInput {
  projectId: string;
  runId: string;
  /** How the run begins: plan from the goal, run the tasks, or come back paused or blocked. */
  start: 'plan' | 'running' | 'paused' | 'blocked';
  goal: string | null;
  settings: LeadSettings;
  tasks: TaskView[];
  /** Highest worker number used so far per type (worker ids are never reused in a run). */
  workerSeq?: Partial<WorkerSeq>;
}

export interface PlanInput { projectId: string; runId: string; goal: string; settings: LeadSettings }
export type PlanOutput = { kind: 'planned'; tasks: TaskView[] } | { kind: 'invalid'; reason: string };

export interface PreflightInput { projectId: string; runId: string; settings: LeadSettings }
/** `ready`: nothing stands in the way of the first model call; `refused`: the run fails with `reason`, nothing paid. */
export type PreflightOutput = { kind: 'ready'; baseline: Baseline | null } | { kind: 'refused'; reason: string };

export interface PersistInput { projectId: string; runId: string; intents: Intent[] }
export interface PersistOutput {
  results: IntentResult[];
  /** Tasks of the project the lead did not know (a finishing write found them and did not end the run). */
  added?: TaskView[];
}

export interface LeadContext {
  projectId: string;
  runId: string;
  /** How the run begins (`paused`/`blocked` when a run is rebuilt); `running` once under way. */
  start: LeadInput['start'];
  goal: string | null;
  settings: LeadSettings;
  tasks: Tasks;
  workers: Workers;
  workerSeq: WorkerSeq;
  /** Decisions waiting for the writer. */
  queue: Intent[];
  /** Decisions being written. */
  batch: Intent[];
  budgetBlocked: boolean;
  summary: string | null;
  /** What the test command said on the base tree before any change (absent in snapshots from before baselines). */
  baseline?: Baseline | null;
}

export type LeadEvent =
  | { type: 'PAUSE' }
  | { type: 'RESUME' }
  | { type: 'CANCEL' }
  | { type: 'CANCEL_TASK'; key: string }
  | { type: 'RETRY'; key: string; guidance?: string | null }
  /** A person's decision about a task in `review`. */
  | { type: 'REVIEW'; key: string; decision: 'approved' | 'rejected'; guidance?: string | null }
  | { type: 'TASKS_ADDED'; tasks: TaskView[] }
  | { type: 'SETTINGS_UPDATED'; settings: LeadSettings }
  | WorkerReportEvent
  | WorkerAttemptEvent;

/** What the lead tells or does to a worker actor, decided by pure logic and enacted by the machine. */
export type WorkerCommand =
  | { type: 'spawn'; agentId: string; agentType: AgentType }
  | { type: 'stop'; agentId: string }
  | { type: 'assign'; agentId: string; job: Job }
  /** Leaving its working state aborts the worker's effect: the model request, the test process. */
  | { type: 'cancel'; agentId: string };

/**
 * What a pure function of the lead decided: the context's new values (tasks, workers, the queue of
 * intents for the writer, …) and the commands for its workers, in the order they are enacted.
 */
export interface Decision {
  context: Partial<LeadContext>;
  commands: WorkerCommand[];
}
