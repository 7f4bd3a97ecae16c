/**
 * The outbox: events are appended in the transaction of the state change they report, and
 * published only after that transaction commits.
 */
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Queryable, Store } from '../db/client.ts';
import { events as eventsTable } from '../db/schema.ts';
import { storableValue } from '../safe-text.ts';
import type { NewEvent, TroupeEvent } from './types.ts';

export const EVENTS_CHANNEL = 'troupe_events';
/**
 * Held from the events insert to commit. `seq` comes from a sequence, and sequences hand out
 * numbers at insert time, not commit time: without this lock a reader could see seq 7 before
 * seq 6 commits and skip 6 for ever. With it, commit order is seq order, across processes.
 */
const APPEND_LOCK_KEY = 7_312_002;

type Row = Omit<typeof eventsTable.$inferSelect, 'writeKey'>;

/**
 * A run's lease checked in the append itself (one statement fewer per write): the run row must
 * name `owner`, and stays locked until commit, so a takeover waits. `failed` is what to throw.
 */
export interface RowFence {
  runId: string;
  owner: string;
  failed(): Error;
}

export function toEnvelope(row: Row): TroupeEvent {
  const out: Record<string, unknown> = { seq: row.seq, type: row.type, projectId: row.projectId };
  if (row.runId) out.runId = row.runId;
  if (row.taskId) out.taskId = row.taskId;
  if (row.agentId) out.agentId = row.agentId;
  out.at = row.at.toISOString();
  out.data = row.data;
  return out as TroupeEvent;
}

/**
 * Appends inside `tx` (call it last, just before commit: it takes the append lock), or, given
 * the database itself, as a transaction of its own (the statement's). One statement takes the
 * lock, inserts the batch in order and (on Postgres) queues the NOTIFY, so the lock is held for
 * one round trip and the commit, not four: every writer waits on it.
 */
export async function appendEvents(tx: Queryable, kind: Store['kind'], batch: NewEvent[], writeKey?: string, fence?: RowFence): Promise<TroupeEvent[]> {
  if (batch.length === 0) return [];
  const payload = JSON.stringify(
    // Postgres refuses NUL and lone surrogates in jsonb: event data shows them (U+2400, U+FFFD).
    batch.map((e) => ({ p: e.projectId, r: e.runId ?? null, t: e.taskId ?? null, a: e.agentId ?? null, y: e.type, d: storableValue(e.data) })),
  );
  // NOTIFY is only a latency hint for other processes (payload: the last seq); PGlite is one process.
  const notify = kind === 'postgres' ? sql`, note as (select pg_notify(${EVENTS_CHANNEL}, max(seq)::text) from ins)` : sql``;
  const from = kind === 'postgres' ? sql`ins, note` : sql`ins`;
  // The lock's row feeds the insert, so it is taken before any seq is drawn. With a fence, the run
  // row is locked first (the order of every writer: run row, then append lock) and the lock, so
  // the insert, happens only when the row names the owner: no row back means the fence failed.
  const fenced = fence
    ? sql`with fence as (select 1 from runs where id = ${fence.runId} and owner = ${fence.owner} for no key update),
    lock as (select pg_advisory_xact_lock(${APPEND_LOCK_KEY}) from fence),`
    : sql`with lock as (select pg_advisory_xact_lock(${APPEND_LOCK_KEY})),`;
  const result = await tx.execute(sql`
    ${fenced}
    ins as (
      insert into events (project_id, run_id, task_id, agent_id, type, data, write_key)
      select e.v->>'p', e.v->>'r', e.v->>'t', e.v->>'a', e.v->>'y', e.v->'d', case when e.ord = 1 then ${writeKey ?? null}::text end
      from lock, jsonb_array_elements(${payload}::jsonb) with ordinality as e(v, ord)
      order by e.ord
      returning seq, project_id, run_id, task_id, agent_id, type, data, at
    )${notify}
    select ins.* from ${from} order by ins.seq`);
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as RawRow[];
  if (fence && rows.length === 0) throw fence.failed();
  return rows.map((r) =>
    toEnvelope({
      seq: Number(r.seq),
      projectId: r.project_id,
      runId: r.run_id,
      taskId: r.task_id,
      agentId: r.agent_id,
      type: r.type,
      data: (typeof r.data === 'string' ? JSON.parse(r.data) : r.data) as Record<string, unknown>,
      at: r.at instanceof Date ? r.at : new Date(r.at),
    }),
  );
}

interface RawRow {
  seq: string | number;
  project_id: string;
  run_id: string | null;
  task_id: string | null;
  agent_id: string | null;
  type: string;
  data: unknown;
  at: Date | string;
}

/** The fence of a transaction that appends no event: the same check, on its own. */
export async function checkFence(tx: Queryable, fence: RowFence): Promise<void> {
  const result = await tx.execute(sql`select 1 as ok from runs where id = ${fence.runId} and owner = ${fence.owner} for no key update`);
  const rows = Array.isArray(result) ? result : (result as { rows: unknown[] }).rows;
  if (rows.length === 0) throw fence.failed();
}

/** Did a write with this key commit (its first event carries the key)? */
export async function writeCommitted(db: Queryable, writeKey: string): Promise<boolean> {
  const rows = await db.select({ seq: eventsTable.seq }).from(eventsTable).where(eq(eventsTable.writeKey, writeKey)).limit(1);
  return rows.length > 0;
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
