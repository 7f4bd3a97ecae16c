/**
 * The outbox: events are appended in the transaction of the state change they report, and
 * published only after that transaction commits.
 */
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Queryable, Store, Tx } from '../db/client.ts';
import { events as eventsTable } from '../db/schema.ts';
import type { NewEvent, TroupeEvent } from './types.ts';

export const EVENTS_CHANNEL = 'troupe_events';
/**
 * Held from the events insert to commit. `seq` comes from a sequence, and sequences hand out
 * numbers at insert time, not commit time: without this lock a reader could see seq 7 before
 * seq 6 commits and skip 6 for ever. With it, commit order is seq order, across processes.
 */
const APPEND_LOCK_KEY = 7_312_002;

type Row = typeof eventsTable.$inferSelect;

export function toEnvelope(row: Row): TroupeEvent {
  const out: Record<string, unknown> = { seq: row.seq, type: row.type, projectId: row.projectId };
  if (row.runId) out.runId = row.runId;
  if (row.taskId) out.taskId = row.taskId;
  if (row.agentId) out.agentId = row.agentId;
  out.at = row.at.toISOString();
  out.data = row.data;
  return out as TroupeEvent;
}

/** Appends inside `tx` (call it last, just before commit: it takes the append lock). */
export async function appendEvents(tx: Tx, kind: Store['kind'], batch: NewEvent[]): Promise<TroupeEvent[]> {
  if (batch.length === 0) return [];
  await tx.execute(sql`select pg_advisory_xact_lock(${APPEND_LOCK_KEY})`);
  const rows = await tx
    .insert(eventsTable)
    .values(
      batch.map((e) => ({
        projectId: e.projectId,
        runId: e.runId ?? null,
        taskId: e.taskId ?? null,
        agentId: e.agentId ?? null,
        type: e.type,
        data: e.data as Record<string, unknown>,
      })),
    )
    .returning();
  rows.sort((a, b) => a.seq - b.seq);
  // NOTIFY is only a latency hint for other processes (payload: the last seq); PGlite is one process.
  if (kind === 'postgres') await tx.execute(sql`select pg_notify(${EVENTS_CHANNEL}, ${String(rows.at(-1)!.seq)})`);
  return rows.map(toEnvelope);
}

export interface EventQuery {
  afterSeq: number;
  projectId?: string | undefined;
  types?: readonly string[] | undefined;
  limit: number;
}

/** One page of the log, in seq order. */
export async function readEvents(db: Queryable, q: EventQuery): Promise<TroupeEvent[]> {
  const where = [gt(eventsTable.seq, q.afterSeq)];
  if (q.projectId) where.push(eq(eventsTable.projectId, q.projectId));
  if (q.types && q.types.length > 0) where.push(inArray(eventsTable.type, [...q.types]));
  const rows = await db
    .select()
    .from(eventsTable)
    .where(and(...where))
    .orderBy(asc(eventsTable.seq))
    .limit(q.limit);
  return rows.map(toEnvelope);
}

export async function lastSeq(db: Queryable): Promise<number> {
  const [row] = await db.select({ max: sql<string | null>`max(${eventsTable.seq})` }).from(eventsTable);
  return row?.max == null ? 0 : Number(row.max);
}
