/** The `model_calls` table: every model answer recorded before it is acted on (pay once), and the usage read from it. */
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { Queryable, Tx } from './client.ts';
import { modelCalls, projects } from './schema.ts';

export type NewModelCall = typeof modelCalls.$inferInsert;

/** The recorded answer for `callKey`, with the id of its row. */
export async function modelCallByKey(db: Queryable, projectId: string, callKey: string): Promise<{ id: string; response: unknown } | undefined> {
  const [row] = await db
    .select({ id: modelCalls.id, response: modelCalls.response })
    .from(modelCalls)
    .where(and(eq(modelCalls.projectId, projectId), eq(modelCalls.callKey, callKey)));
  return row;
}

/** Records a call; returns false when a row for its key (or id) is there already. */
export async function insertModelCall(tx: Tx, row: NewModelCall): Promise<boolean> {
  const inserted = await tx.insert(modelCalls).values(row).onConflictDoNothing().returning({ id: modelCalls.id });
  return inserted.length > 0;
}

// ── usage ──────────────────────────────────────────────────────────────────────────────

export interface UsageRow {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number | null;
  unpriced: number;
}

const usageColumns = {
  inputTokens: sql<number>`coalesce(sum(${modelCalls.inputTokens}), 0)::int`,
  outputTokens: sql<number>`coalesce(sum(${modelCalls.outputTokens}), 0)::int`,
  cacheReadTokens: sql<number>`coalesce(sum(${modelCalls.cacheReadTokens}), 0)::int`,
  cacheWriteTokens: sql<number>`coalesce(sum(${modelCalls.cacheWriteTokens}), 0)::int`,
  costUsd: sql<number | null>`coalesce(sum(${modelCalls.costUsd}), 0)::float8`,
  unpriced: sql<number>`count(*) filter (where ${modelCalls.costUsd} is null)::int`,
};

/** Token and cost totals per project. */
export async function usageByProject(db: Queryable, projectIds: string[]): Promise<Map<string, UsageRow>> {
  const out = new Map<string, UsageRow>();
  if (projectIds.length === 0) return out;
  const rows = await db
    .select({ projectId: modelCalls.projectId, ...usageColumns })
    .from(modelCalls)
    .where(inArray(modelCalls.projectId, projectIds))
    .groupBy(modelCalls.projectId);
  for (const r of rows) out.set(r.projectId, normaliseUsage(r));
  return out;
}

/** Usage grouped by one dimension (task, agent or model) for a project. */
export async function usageGrouped(db: Queryable, projectId: string, by: 'taskId' | 'agentId' | 'model'): Promise<(UsageRow & { group: string | null })[]> {
  const column = by === 'taskId' ? modelCalls.taskId : by === 'agentId' ? modelCalls.agentId : modelCalls.model;
  const rows = await db
    .select({ group: column, ...usageColumns })
    .from(modelCalls)
    .where(eq(modelCalls.projectId, projectId))
    .groupBy(column)
    .orderBy(asc(column));
  return rows.map((r) => ({ group: r.group, ...normaliseUsage(r) }));
}

function normaliseUsage(r: UsageRow): UsageRow {
  return {
    inputTokens: Number(r.inputTokens),
    outputTokens: Number(r.outputTokens),
    cacheReadTokens: Number(r.cacheReadTokens),
    cacheWriteTokens: Number(r.cacheWriteTokens),
    costUsd: Number(r.unpriced) > 0 ? null : Number(r.costUsd ?? 0),
    unpriced: Number(r.unpriced),
  };
}

/** USD spent by the project's priced calls (budget checks; unpriced calls cannot be counted). */
export async function spentUsd(db: Queryable, projectId: string): Promise<number> {
  const [row] = await db
    .select({ spent: sql<number>`coalesce(sum(${modelCalls.costUsd}), 0)::float8` })
    .from(modelCalls)
    .where(eq(modelCalls.projectId, projectId));
  return Number(row?.spent ?? 0);
}

/**
 * The project's budget (`config.budgetUsd`; null: none) and what its priced calls cost so far,
 * in one statement: the check before every model call.
 */
export async function budgetAndSpent(db: Queryable, projectId: string): Promise<{ budgetUsd: number | null; spentUsd: number }> {
  const [row] = await db
    .select({
      budget: sql<number | null>`(${projects.config}->>'budgetUsd')::float8`,
      spent: sql<number>`(select coalesce(sum(${modelCalls.costUsd}), 0)::float8 from ${modelCalls} where ${modelCalls.projectId} = ${projectId})`,
    })
    .from(projects)
    .where(eq(projects.id, projectId));
  return { budgetUsd: row?.budget == null ? null : Number(row.budget), spentUsd: row ? Number(row.spent) : await spentUsd(db, projectId) };
}

export async function usageOfTask(db: Queryable, taskId: string): Promise<UsageRow> {
  const [row] = await db.select(usageColumns).from(modelCalls).where(eq(modelCalls.taskId, taskId));
  return normaliseUsage(row ?? { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0, unpriced: 0 });
}
