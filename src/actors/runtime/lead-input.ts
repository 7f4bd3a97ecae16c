/**
 * What a lead starts from, read from the database: its settings (from the project row), the
 * persisted snapshot it may continue from, the worker numbers already used, and — when it starts
 * over from the task rows — nothing of the run left looking in flight.
 */
import type { Snapshot } from 'xstate';
import { agentIdsOfRun } from '../../db/agents.ts';
import type { Queryable } from '../../db/client.ts';
import type { ProjectRow } from '../../db/projects.ts';
import { withDbRetry } from '../../db/retry.ts';
import type { RunRow } from '../../db/runs.ts';
import { actorsOfRun } from '../../db/snapshots.ts';
import { tasksOf } from '../../db/tasks.ts';
import { normalizeConfig } from '../../domain/inputs.ts';
import type { Outbox } from '../../events/outbox.ts';
import { LEAD_MACHINE_VERSION, type LeadSettings } from '../../machines/lead.ts';
import type { Intent } from '../../machines/lead-logic.ts';
import { parseWorkerId, type AgentType } from '../../machines/types.ts';
import { WORKER_MACHINE_VERSION } from '../../machines/worker.ts';
import type { Leases } from './leases.ts';
import { persistBatch } from './lead-writer.ts';

/** The lead's settings from a project row. */
export function settingsOf(project: ProjectRow): LeadSettings {
  const c = normalizeConfig(project.config);
  return {
    maxConcurrency: c.maxConcurrency,
    maxAgents: c.maxAgents,
    maxCorrections: c.maxCorrectionAttempts,
    budgetUsd: c.budgetUsd,
    models: c.models,
    workspace: project.workspace,
    isolation: c.isolation,
    testCommand: project.testCommand,
    testTimeoutMs: c.testTimeoutMs,
    sandbox: c.sandbox,
    review: c.review,
    protectedPaths: c.protectedPaths,
  };
}

/** The run's persisted lead snapshot, if it can be restored with today's machines. */
export async function restorableSnapshot(db: Queryable, runId: string): Promise<Snapshot<unknown> | undefined> {
  const rows = await actorsOfRun(db, runId);
  const lead = rows.find((r) => r.actorId === 'lead');
  if (!lead || lead.machineVersion !== LEAD_MACHINE_VERSION || lead.status !== 'active') return undefined;
  if (rows.some((r) => r.kind === 'worker' && r.machineVersion !== WORKER_MACHINE_VERSION)) return undefined;
  return lead.snapshot as Snapshot<unknown>;
}

/** Before a lead takes a run over, nothing of it may look in flight (and `pausing` has ended). */
export async function releaseStale(outbox: Outbox, leases: Leases, run: RunRow): Promise<void> {
  await withDbRetry(() =>
    outbox.transact(async (tx, emit) => {
      await leases.fence(tx, run.id);
      const stale = (await tasksOf(tx, run.projectId)).filter((t) => t.status === 'in_progress');
      const intents: Intent[] = stale.map((t) => ({ type: 'release', taskId: t.id, key: t.key }));
      if (run.status === 'pausing') intents.push({ type: 'run', status: 'paused' });
      await persistBatch(tx, emit, { projectId: run.projectId, runId: run.id, intents });
    }),
  );
}

/** Highest worker number per type already used in the run: worker ids are never reused. */
export async function workerSeq(db: Queryable, runId: string): Promise<Partial<Record<AgentType, number>>> {
  const seq: Partial<Record<AgentType, number>> = {};
  for (const agentId of await agentIdsOfRun(db, runId)) {
    const w = parseWorkerId(agentId);
    if (w) seq[w.type] = Math.max(seq[w.type] ?? 0, w.n);
  }
  return seq;
}
