/**
 * Rows → the JSON shapes of the README's "HTTP API" (Project, Task, Run, ActorView, usage).
 */
import type { CorrectionRow } from '../../db/corrections.ts';
import type { UsageRow } from '../../db/model-calls.ts';
import type { ProjectRow } from '../../db/projects.ts';
import type { RunRow } from '../../db/runs.ts';
import type { ActorRow } from '../../db/snapshots.ts';
import type { TaskRow } from '../../db/tasks.ts';
import type { TestResultRow } from '../../db/test-results.ts';
import { normalizeConfig, type ProjectConfig } from '../../domain/inputs.ts';
import type { Progress } from '../../events/types.ts';
import type { AgentType, BlockedReason, TaskReview, TaskStatus, TaskView } from '../../machines/types.ts';

export interface UsageJson {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number | null;
}

export interface ProjectJson {
  id: string;
  name: string;
  workspace: string;
  testCommand: string[];
  goal: string | null;
  config: ProjectConfig;
  status: string;
  progress: Progress;
  usage: UsageJson;
  createdAt: string;
}

export interface TaskJson {
  id: string;
  projectId: string;
  key: string;
  title: string;
  description: string;
  agentType: string;
  dependsOn: string[];
  priority: number;
  status: string;
  blockedReason: string | null;
  /** Why the task failed, blocked, or completed unverified, in one sentence (null otherwise). */
  reason: string | null;
  /** The project's own, unmodified test setup passed (null until the task's tests decided). */
  verified: boolean | null;
  agentId: string | null;
  attempts: number;
  guidance: string | null;
  commit: string | null;
  filesChanged: string[];
  /** Why the task waits (or waited) for review, and the decision: `{reason, files, attempt, verified, decision?}`. */
  review: TaskReview | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

export interface RunJson {
  id: string;
  projectId: string;
  status: string;
  startedAt: string;
  endedAt: string | null;
  summary: string | null;
}

export interface ActorJson {
  id: string;
  kind: 'lead' | 'worker';
  agentType?: string;
  machine: string;
  machineVersion: number;
  state: unknown;
  status: string;
  taskId?: string;
  /** The key of the task `taskId` names (README "HTTP API": next to `taskId`). */
  taskKey?: string;
  attempt?: number;
  updatedAt: string;
}

export const EMPTY_USAGE: UsageJson = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0 };

export function usageJson(row: UsageRow | undefined): UsageJson {
  if (!row) return { ...EMPTY_USAGE };
  return {
    inputTokens: row.inputTokens,
    outputTokens: row.outputTokens,
    cacheReadTokens: row.cacheReadTokens,
    cacheWriteTokens: row.cacheWriteTokens,
    costUsd: row.costUsd === null ? null : Math.round(row.costUsd * 1e6) / 1e6,
  };
}

export function progressFrom(counts: Record<string, number> | undefined): Progress {
  const c = counts ?? {};
  const n = (s: string) => c[s] ?? 0;
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  return {
    total,
    pending: n('pending'),
    inProgress: n('in_progress'),
    review: n('review'),
    completed: n('completed'),
    failed: n('failed'),
    blocked: n('blocked'),
    cancelled: n('cancelled'),
    percent: total === 0 ? 0 : Math.round((n('completed') / total) * 100),
  };
}

export function projectJson(row: ProjectRow, counts: Record<string, number> | undefined, usage: UsageRow | undefined, latest: RunRow | undefined): ProjectJson {
  return {
    id: row.id,
    name: row.name,
    workspace: row.workspace,
    testCommand: row.testCommand,
    goal: row.goal,
    config: normalizeConfig(row.config),
    status: latest?.status ?? 'idle',
    progress: progressFrom(counts),
    usage: usageJson(usage),
    createdAt: row.createdAt.toISOString(),
  };
}

export function taskJson(row: TaskRow, dependsOn: string[]): TaskJson {
  return {
    id: row.id,
    projectId: row.projectId,
    key: row.key,
    title: row.title,
    description: row.description,
    agentType: row.agentType,
    dependsOn,
    priority: row.priority,
    status: row.status,
    blockedReason: row.blockedReason,
    reason: row.reason,
    verified: row.verified,
    agentId: row.agentId,
    attempts: row.attempts,
    guidance: row.guidance,
    commit: row.commit,
    filesChanged: row.filesChanged,
    review: row.review ?? null,
    createdAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    completedAt: row.completedAt?.toISOString() ?? null,
  };
}

export function runJson(row: RunRow): RunJson {
  return {
    id: row.id,
    projectId: row.projectId,
    status: row.status,
    startedAt: row.startedAt.toISOString(),
    endedAt: row.endedAt?.toISOString() ?? null,
    summary: row.summary,
  };
}

/** `taskKey`: the key of the task `row.taskId` names (read with the row, see `Runtime.actorRows`). */
export function actorJson(row: ActorRow, taskKey?: string | null): ActorJson {
  const out: ActorJson = {
    id: row.actorId,
    kind: row.kind === 'lead' ? 'lead' : 'worker',
    machine: row.machine,
    machineVersion: row.machineVersion,
    state: row.state,
    status: row.status,
    updatedAt: row.updatedAt.toISOString(),
  };
  if (row.agentType) out.agentType = row.agentType;
  if (row.taskId) {
    out.taskId = row.taskId;
    if (taskKey) out.taskKey = taskKey;
  }
  if (row.attempt !== null) out.attempt = row.attempt;
  return out;
}

/** A task row as the lead machine sees it. */
export function taskViewOf(row: TaskRow, dependsOn: string[]): TaskView {
  return {
    id: row.id,
    key: row.key,
    agentType: row.agentType as AgentType,
    dependsOn,
    priority: row.priority,
    ordinal: row.ordinal,
    status: row.status as TaskStatus,
    blockedReason: row.blockedReason as BlockedReason | null,
    epoch: row.epoch,
    attempts: row.attempts,
    agentId: row.agentId,
    review: row.review ?? null,
    guidance: row.guidance,
  };
}

/** A task with its test results, the baseline they are read against, its corrections and usage (`GET …/tasks/:ref`). */
export function taskDetailJson(task: TaskJson, results: TestResultRow[], base: TestResultRow | null, corrections: CorrectionRow[], usage: UsageRow) {
  return {
    ...task,
    testResults: results.map((r) => ({
      attempt: r.attempt,
      epoch: r.epoch,
      status: r.status,
      passed: r.passed,
      failed: r.failed,
      errors: r.errors,
      skipped: r.skipped,
      total: r.total,
      phase: r.phase,
      failures: r.failures,
      exitCode: r.exitCode,
      durationMs: r.durationMs,
      verified: r.verified,
      sandbox: r.sandbox,
      output: r.output,
      createdAt: r.createdAt.toISOString(),
    })),
    // What the tests said on the base tree before any change: failures listed there are not this task's doing.
    baseline: base && {
      commit: base.commit,
      status: base.status,
      passed: base.passed,
      failed: base.failed,
      total: base.total,
      failing: (base.failures ?? []).map((f) => f.name),
      summary: base.summary,
      createdAt: base.createdAt.toISOString(),
    },
    corrections: corrections.map((c) => ({
      attempt: c.attempt,
      epoch: c.epoch,
      status: c.status,
      errorSummary: c.errorSummary,
      createdAt: c.createdAt.toISOString(),
      updatedAt: c.updatedAt.toISOString(),
    })),
    usage: usageJson(usage),
  };
}
