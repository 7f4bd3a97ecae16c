/** The `actor_snapshots` table: the latest persisted snapshot of each actor of a run (a view and a restore point). */
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Queryable, Tx } from './client.ts';
import { actorSnapshots, tasks } from './schema.ts';

export type ActorRow = typeof actorSnapshots.$inferSelect;
export type NewActorRow = typeof actorSnapshots.$inferInsert;

/** Writes the rows, each replacing the actor's previous snapshot. */
export async function upsertSnapshots(tx: Tx, rows: NewActorRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx
    .insert(actorSnapshots)
    .values(rows)
    .onConflictDoUpdate({
      target: [actorSnapshots.runId, actorSnapshots.actorId],
      set: {
        state: sql`excluded.state`,
        status: sql`excluded.status`,
        taskId: sql`excluded.task_id`,
        attempt: sql`excluded.attempt`,
        snapshot: sql`excluded.snapshot`,
        machineVersion: sql`excluded.machine_version`,
        updatedAt: sql`excluded.updated_at`,
      },
    });
}

export async function actorsOfRun(db: Queryable, runId: string): Promise<ActorRow[]> {
  return db.select().from(actorSnapshots).where(eq(actorSnapshots.runId, runId)).orderBy(asc(actorSnapshots.actorId));
}

/** The run's actor rows (or one), each with the key of the task its `taskId` names: one query. */
export async function actorsWithTaskKeys(db: Queryable, runId: string, actorId?: string): Promise<{ row: ActorRow; taskKey: string | null }[]> {
  const where = and(eq(actorSnapshots.runId, runId), actorId === undefined ? undefined : eq(actorSnapshots.actorId, actorId));
  return db
    .select({ row: actorSnapshots, taskKey: tasks.key })
    .from(actorSnapshots)
    .leftJoin(tasks, eq(tasks.id, actorSnapshots.taskId))
    .where(where)
    .orderBy(asc(actorSnapshots.actorId));
}
