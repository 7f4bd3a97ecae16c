/**
 * The `tasks` table and its dependency edges: every write of a task row is here, beside the
 * reads. "Where does a task's status change?" `transitionTask` — the guarded, row-locked move
 * the lead's batches make (`actors/runtime/lead-writer.ts` says which move each intent is).
 */
import { and, asc, eq, inArray, or, sql, type SQL } from 'drizzle-orm';
import type { TaskStatus } from '../machines/types.ts';
import type { Queryable, Tx } from './client.ts';
import { taskDependencies, tasks } from './schema.ts';

export type TaskRow = typeof tasks.$inferSelect;
export type TaskSet = Partial<typeof tasks.$inferInsert> & { status: TaskStatus };

// ── reads ──────────────────────────────────────────────────────────────────────────────

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

/** What a worker's prompt needs of its task. */
export async function taskText(db: Queryable, taskId: string) {
  const [row] = await db.select({ key: tasks.key, title: tasks.title, description: tasks.description, guidance: tasks.guidance }).from(tasks).where(eq(tasks.id, taskId));
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

// ── status ─────────────────────────────────────────────────────────────────────────────

export interface Transition {
  applied: boolean;
  /** The row was already where this move leads: a batch written before a crash, run again. */
  replayed: boolean;
  from: TaskStatus | null;
  status: TaskStatus | null;
}

export type TaskRowState = { status: string; agentId: string | null; blockedReason: string | null };

/**
 * Moves a task from one of `from` to `set.status` (row-locked first, so `from` is true). A row
 * already in the target state (`already`) counts as applied but replayed: a restored lead may
 * write a batch again that had committed before the crash, and must neither fail on it nor
 * report it twice. `extraGuard` is one more condition of the update (an assignment's
 * dependencies all completed).
 */
export async function transitionTask(
  tx: Tx,
  taskId: string,
  from: readonly TaskStatus[],
  set: TaskSet,
  already: (row: TaskRowState) => boolean,
  extraGuard?: SQL,
): Promise<Transition> {
  const only = from.length === 1 ? from[0] : undefined;
  if (only !== undefined) {
    // The usual move (one status it may come from): one statement. The update locks the row and
    // re-checks its guard on the latest version, so `from` is true; anything else is told below.
    const moved = await tx
      .update(tasks)
      .set(set)
      .where(and(eq(tasks.id, taskId), eq(tasks.status, only), extraGuard))
      .returning({ id: tasks.id });
    if (moved.length > 0) return { applied: true, replayed: false, from: only, status: set.status };
  }
  const [current] = await tx
    .select({ status: tasks.status, agentId: tasks.agentId, blockedReason: tasks.blockedReason })
    .from(tasks)
    .where(eq(tasks.id, taskId))
    // Not `for update`: a worker's row that references the task (its key-share lock) need not wait.
    .for('no key update');
  if (!current) return { applied: false, replayed: false, from: null, status: null };
  const was = current.status as TaskStatus;
  if (already(current)) return { applied: true, replayed: true, from: was, status: was };
  if (!from.includes(was)) return { applied: false, replayed: false, from: was, status: was };
  const where = extraGuard ? and(eq(tasks.id, taskId), extraGuard) : eq(tasks.id, taskId);
  const updated = await tx.update(tasks).set(set).where(where).returning({ id: tasks.id });
  if (updated.length === 0) return { applied: false, replayed: false, from: was, status: was };
  return { applied: true, replayed: false, from: was, status: set.status };
}

/** The database's own refusal of an assignment: some dependency of the task is not completed. */
export function dependenciesCompleted(taskId: string): SQL {
  return sql`not exists (select 1 from ${taskDependencies} d join ${tasks} dt on dt.id = d.depends_on_id
        where d.task_id = ${taskId} and dt.status <> 'completed')`;
}

/** Records the attempt a task in progress is on. Returns whether the task was in progress. */
export async function setTaskAttempt(tx: Tx, taskId: string, attempt: number): Promise<boolean> {
  const updated = await tx
    .update(tasks)
    .set({ attempts: attempt })
    .where(and(eq(tasks.id, taskId), eq(tasks.status, 'in_progress')))
    .returning({ id: tasks.id });
  return updated.length > 0;
}

/** `epoch + 1`: a requeue that starts the task over. */
export function nextEpoch(): number {
  return sql`${tasks.epoch} + 1` as unknown as number;
}

// ── new tasks ──────────────────────────────────────────────────────────────────────────

export interface NewTaskRow {
  key: string;
  title: string;
  description: string;
  agentType: string;
  dependsOn: string[];
  priority: number;
}

/**
 * Inserts tasks (`pending`) and their dependency edges; dependencies may name tasks of `list` or
 * tasks already in the project. Returns the rows by ordinal, and the id and ordinal of every key
 * involved (for the events that report them).
 */
export async function insertTasks(
  tx: Tx,
  projectId: string,
  list: NewTaskRow[],
  newTaskId: () => string,
): Promise<{ rows: TaskRow[]; ids: Map<string, string>; ordinal: Map<string, number> }> {
  const ids = new Map(list.map((t) => [t.key, newTaskId()]));
  const inserted = await tx
    .insert(tasks)
    .values(
      list.map((t) => ({
        id: ids.get(t.key)!,
        projectId,
        key: t.key,
        title: t.title,
        description: t.description,
        agentType: t.agentType,
        priority: t.priority,
        status: 'pending',
      })),
    )
    .returning();
  inserted.sort((a, b) => a.ordinal - b.ordinal);
  const ordinal = new Map(inserted.map((r) => [r.key, r.ordinal]));
  const wanted = [...new Set(list.flatMap((t) => t.dependsOn).filter((k) => !ids.has(k)))];
  if (wanted.length > 0) {
    const existing = await tx
      .select({ id: tasks.id, key: tasks.key, ordinal: tasks.ordinal })
      .from(tasks)
      .where(and(eq(tasks.projectId, projectId), inArray(tasks.key, wanted)));
    for (const e of existing) {
      ids.set(e.key, e.id);
      ordinal.set(e.key, e.ordinal);
    }
  }
  const edges = list.flatMap((t) => t.dependsOn.map((d) => ({ taskId: ids.get(t.key)!, dependsOnId: ids.get(d)! })));
  if (edges.length > 0) await tx.insert(taskDependencies).values(edges);
  return { rows: inserted, ids, ordinal };
}
