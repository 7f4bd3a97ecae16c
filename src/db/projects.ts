/** The `projects` table: every write of a project row, beside the reads. */
import { and, asc, eq, inArray } from 'drizzle-orm';
import { ACTIVE_RUN_STATUSES } from '../machines/types.ts';
import type { Queryable, Tx } from './client.ts';
import { projects, runs } from './schema.ts';

export type ProjectRow = typeof projects.$inferSelect;

export async function projectById(db: Queryable, id: string): Promise<ProjectRow | undefined> {
  const [row] = await db.select().from(projects).where(eq(projects.id, id));
  return row;
}

export async function allProjects(db: Queryable): Promise<ProjectRow[]> {
  return db.select().from(projects).orderBy(asc(projects.createdAt), asc(projects.id));
}

export async function insertProject(db: Queryable, values: typeof projects.$inferInsert): Promise<void> {
  await db.insert(projects).values(values);
}

/** Changes the given fields (and `updatedAt`); returns the new row, none when the project is gone. */
export async function updateProject(
  db: Queryable,
  id: string,
  set: Partial<Pick<typeof projects.$inferInsert, 'name' | 'testCommand' | 'config'>>,
): Promise<ProjectRow | undefined> {
  const [updated] = await db
    .update(projects)
    .set({ ...set, updatedAt: new Date() })
    .where(eq(projects.id, id))
    .returning();
  return updated;
}

/**
 * Locks the project row until the transaction ends; returns false when there is none. A delete
 * takes `update`; a start takes `no key update` (a start and a delete never interleave); adding
 * tasks takes `key share` (a delete waits for the new rows, never a foreign-key error half-way).
 */
export async function lockProject(tx: Tx, id: string, strength: 'update' | 'no key update' | 'key share'): Promise<boolean> {
  const [row] = await tx.select({ id: projects.id }).from(projects).where(eq(projects.id, id)).for(strength);
  return row !== undefined;
}

/** Does the project have an active run? */
export async function hasActiveRun(db: Queryable, projectId: string): Promise<boolean> {
  const [active] = await db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.projectId, projectId), inArray(runs.status, [...ACTIVE_RUN_STATUSES])))
    .limit(1);
  return active !== undefined;
}

/** Deletes the project and (cascading) everything of it. */
export async function deleteProject(tx: Tx, id: string): Promise<void> {
  await tx.delete(projects).where(eq(projects.id, id));
}
