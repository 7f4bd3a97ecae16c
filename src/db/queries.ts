/**
 * Read queries. They take a `Queryable` (the database or an open transaction) and return rows;
 * the runtime turns rows into the contract's JSON shapes.
 */
import { and, asc, desc, eq, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import type { Queryable } from './client.ts';
import { actorSnapshots, corrections, modelCalls, projects, runs, taskDependencies, tasks, testResults } from './schema.ts';

export type ProjectRow = typeof projects.$inferSelect;
export type TaskRow = typeof tasks.$inferSelect;
export type RunRow = typeof runs.$inferSelect;
export type ActorRow = typeof actorSnapshots.$inferSelect;

export { ACTIVE_RUN_STATUSES } from '../machines/types.ts';

export async function projectById(db: Queryable, id: string): Promise<ProjectRow | undefined> {
  const [row] = await db.select().from(projects).where(eq(projects.id, id));
  return row;
}

export async function allProjects(db: Queryable): Promise<ProjectRow[]> {
  return db.select().from(projects).orderBy(asc(projects.createdAt), asc(projects.id));
}

export async function tasksOf(db: Queryable, projectId: string): Promise<TaskRow[]> {
  return db.select().from(tasks).where(eq(tasks.projectId, projectId)).orderBy(asc(tasks.ordinal));
}

/** A task by id or by key. */
export async function taskByRef(db: Queryable, projectId: string, ref: string): Promise<TaskRow | undefined> {
  const [row] = await db
    .select()
    .from(tasks)
    .where(and(eq(tasks.projectId, projectId), or(eq(tasks.id, ref), eq(tasks.key, ref))));
  return row;
}

/** Dependency keys per task id, for the given project. */
export async function dependencyKeys(db: Queryable, projectId: string): Promise<Map<string, string[]>> {
  const rows = await db
    .select({ taskId: taskDependencies.taskId, key: tasks.key })
    .from(taskDependencies)
    .innerJoin(tasks, eq(tasks.id, taskDependencies.dependsOnId))
    .where(eq(tasks.projectId, projectId))
    .orderBy(asc(tasks.ordinal));
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const list = out.get(r.taskId) ?? [];
    list.push(r.key);
    out.set(r.taskId, list);
  }
  return out;
}

export async function statusCounts(db: Queryable, projectIds: string[]): Promise<Map<string, Record<string, number>>> {
  const out = new Map<string, Record<string, number>>();
  if (projectIds.length === 0) return out;
  const rows = await db
    .select({ projectId: tasks.projectId, status: tasks.status, n: sql<number>`count(*)::int` })
    .from(tasks)
    .where(inArray(tasks.projectId, projectIds))
    .groupBy(tasks.projectId, tasks.status);
  for (const r of rows) {
    const counts = out.get(r.projectId) ?? {};
    counts[r.status] = Number(r.n);
    out.set(r.projectId, counts);
  }
  return out;
}

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

export async function runsOf(db: Queryable, projectId: string): Promise<RunRow[]> {
  return db.select().from(runs).where(eq(runs.projectId, projectId)).orderBy(desc(runs.startedAt), desc(runs.id));
}

export async function latestRuns(db: Queryable, projectIds: string[]): Promise<Map<string, RunRow>> {
  const out = new Map<string, RunRow>();
  if (projectIds.length === 0) return out;
  const rows = await db
    .selectDistinctOn([runs.projectId])
    .from(runs)
    .where(inArray(runs.projectId, projectIds))
    .orderBy(runs.projectId, desc(runs.startedAt), desc(runs.id));
  for (const r of rows) out.set(r.projectId, r);
  return out;
}

export async function runById(db: Queryable, projectId: string, runId: string): Promise<RunRow | undefined> {
  const [row] = await db.select().from(runs).where(and(eq(runs.projectId, projectId), eq(runs.id, runId)));
  return row;
}

export async function actorsOfRun(db: Queryable, runId: string): Promise<ActorRow[]> {
  return db.select().from(actorSnapshots).where(eq(actorSnapshots.runId, runId)).orderBy(asc(actorSnapshots.actorId));
}

export async function testResultsOf(db: Queryable, taskId: string) {
  return db.select().from(testResults).where(eq(testResults.taskId, taskId)).orderBy(asc(testResults.id));
}

/**
 * The baseline (the test command on the base tree before any change) a task's results are read
 * against: the project's latest one recorded at or before `at`. A run that reused a cached baseline
 * finds that earlier run's row, which is the same result for the same commit.
 */
export async function baselineBefore(db: Queryable, projectId: string, at: Date) {
  const [row] = await db
    .select()
    .from(testResults)
    .where(and(eq(testResults.projectId, projectId), eq(testResults.phase, 'baseline'), isNull(testResults.taskId), lte(testResults.createdAt, at)))
    .orderBy(desc(testResults.createdAt), desc(testResults.id))
    .limit(1);
  return row ?? null;
}

export async function correctionsOf(db: Queryable, taskId: string) {
  return db.select().from(corrections).where(eq(corrections.taskId, taskId)).orderBy(asc(corrections.epoch), asc(corrections.attempt));
}

export async function usageOfTask(db: Queryable, taskId: string): Promise<UsageRow> {
  const [row] = await db.select(usageColumns).from(modelCalls).where(eq(modelCalls.taskId, taskId));
  return normaliseUsage(row ?? { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0, unpriced: 0 });
}
