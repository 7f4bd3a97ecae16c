/** The `corrections` table: each self-correction attempt of a task, by epoch and attempt. */
import { asc, eq, sql } from 'drizzle-orm';
import type { Queryable, Tx } from './client.ts';
import { corrections } from './schema.ts';

export type CorrectionRow = typeof corrections.$inferSelect;
export type NewCorrection = Omit<typeof corrections.$inferInsert, 'errorSummary'> & { errorSummary: string | null };

/** Writes an attempt's row, or updates it: a success keeps the summary of the failure it corrected. */
export async function upsertCorrection(tx: Tx, row: NewCorrection): Promise<void> {
  await tx
    .insert(corrections)
    .values(row)
    .onConflictDoUpdate({
      target: [corrections.taskId, corrections.epoch, corrections.attempt],
      set: { status: row.status, errorSummary: sql`coalesce(excluded.error_summary, ${corrections.errorSummary})`, updatedAt: new Date() },
    });
}

export async function correctionsOf(db: Queryable, taskId: string): Promise<CorrectionRow[]> {
  return db.select().from(corrections).where(eq(corrections.taskId, taskId)).orderBy(asc(corrections.epoch), asc(corrections.attempt));
}
