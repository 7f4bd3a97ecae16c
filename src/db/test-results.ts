/** The `test_results` table: every run of a test command — a task's attempts and the project's baselines. */
import { and, asc, desc, eq, gte, isNull, lte } from 'drizzle-orm';
import type { Queryable, Tx } from './client.ts';
import { projects, testResults } from './schema.ts';

export type TestResultRow = typeof testResults.$inferSelect;

export async function insertTestResult(tx: Tx, row: typeof testResults.$inferInsert): Promise<void> {
  await tx.insert(testResults).values(row);
}

export async function testResultsOf(db: Queryable, taskId: string): Promise<TestResultRow[]> {
  return db.select().from(testResults).where(eq(testResults.taskId, taskId)).orderBy(asc(testResults.id));
}

/**
 * The baseline (the test command on the base tree before any change) a task's results are read
 * against: the project's latest one recorded at or before `at`. A run that reused a cached baseline
 * finds that earlier run's row, which is the same result for the same commit.
 */
export async function baselineBefore(db: Queryable, projectId: string, at: Date): Promise<TestResultRow | null> {
  const [row] = await db
    .select()
    .from(testResults)
    .where(and(eq(testResults.projectId, projectId), eq(testResults.phase, 'baseline'), isNull(testResults.taskId), lte(testResults.createdAt, at)))
    .orderBy(desc(testResults.createdAt), desc(testResults.id))
    .limit(1);
  return row ?? null;
}

/** The project's latest baseline of `commit` recorded since its settings (test command, sandbox, timeout) last changed. */
export async function cachedBaselineRow(db: Queryable, projectId: string, commit: string): Promise<TestResultRow | null> {
  const [row] = await db
    .select({ r: testResults })
    .from(testResults)
    .innerJoin(projects, eq(projects.id, testResults.projectId))
    .where(and(eq(testResults.projectId, projectId), eq(testResults.phase, 'baseline'), eq(testResults.commit, commit), isNull(testResults.taskId), gte(testResults.createdAt, projects.updatedAt)))
    .orderBy(desc(testResults.id))
    .limit(1);
  return row?.r ?? null;
}
