/**
 * The `runs` table: every write of a run row is here — its creation, its status, its lease
 * (owner and expiry live on the row) — beside the reads. "Where does a run's status change?"
 * `setRunStatus` (and `markPlanned`, the planner's `planning → running`).
 */
import { and, desc, eq, inArray, isNull, lt, notInArray, or, sql, type SQL } from 'drizzle-orm';
import { ACTIVE_RUN_STATUSES, type RunStatus } from '../machines/types.ts';
import type { Queryable, Tx } from './client.ts';
import { runs } from './schema.ts';

export type RunRow = typeof runs.$inferSelect;

/** Final run statuses: nothing moves a completed, cancelled or failed run again. */
export const FINAL_RUN_STATUSES: readonly RunStatus[] = ['completed', 'cancelled', 'failed'];

// ── reads ──────────────────────────────────────────────────────────────────────────────

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

// ── status ─────────────────────────────────────────────────────────────────────────────

/**
 * Inserts a new run (the caller's transaction; the unique index on active runs refuses a second
 * active one per project with 23505). `lease` makes the creating process its owner.
 */
export async function insertRun(tx: Tx, values: { id: string; projectId: string; status: RunStatus; owner: string; leaseExpiresAt: SQL }): Promise<RunRow> {
  const [row] = await tx.insert(runs).values(values).returning();
  return row!;
}

/**
 * Moves the run to `status`, never out of a final status (`running` only from pausing, paused,
 * blocked or running); a final or blocked status sets `endedAt` and `summary`. Returns whether
 * the row moved.
 */
export async function setRunStatus(tx: Tx, runId: string, status: RunStatus, summary?: string): Promise<boolean> {
  const final = FINAL_RUN_STATUSES.includes(status) || status === 'blocked';
  const updated = await tx
    .update(runs)
    .set({ status, updatedAt: new Date(), ...(final ? { endedAt: new Date(), summary: summary ?? null } : { endedAt: null }) })
    .where(
      and(
        eq(runs.id, runId),
        notInArray(runs.status, [...FINAL_RUN_STATUSES]),
        status === 'running' ? inArray(runs.status, ['pausing', 'paused', 'blocked', 'running']) : undefined,
      ),
    )
    .returning({ id: runs.id });
  return updated.length > 0;
}

/** The planner's tasks are saved: `planning → running` (guarded). Returns whether the run was still planning. */
export async function markPlanned(tx: Tx, runId: string): Promise<boolean> {
  const [run] = await tx
    .update(runs)
    .set({ status: 'running', updatedAt: new Date() })
    .where(and(eq(runs.id, runId), eq(runs.status, 'planning')))
    .returning({ id: runs.id });
  return run !== undefined;
}

// ── the lease (see actors/runtime/leases.ts) ──────────────────────────────────────────

/** `now()` plus `ms`: a lease's expiry, computed by the database's clock. */
export function leaseExpiry(ms: number): SQL {
  return sql`now() + (${ms} * interval '1 millisecond')`;
}

/**
 * Gives `owner` the run if nobody holds it, `owner` already does, the holder's lease expired, or
 * `deadOwner` (verified dead by the caller) holds it. Returns whether it was taken.
 */
export async function claimLease(db: Queryable, runId: string, owner: string, expiry: SQL, deadOwner: string | null): Promise<boolean> {
  const rows = await db
    .update(runs)
    .set({ owner, leaseExpiresAt: expiry })
    .where(
      and(
        eq(runs.id, runId),
        or(isNull(runs.owner), eq(runs.owner, owner), lt(runs.leaseExpiresAt, sql`now()`), deadOwner ? eq(runs.owner, deadOwner) : undefined),
      ),
    )
    .returning({ id: runs.id });
  return rows.length > 0;
}

/** Extends `owner`'s leases of `runIds`; returns the ids it still holds. */
export async function renewLeases(db: Queryable, runIds: string[], owner: string, expiry: SQL): Promise<Set<string>> {
  const kept = await db
    .update(runs)
    .set({ leaseExpiresAt: expiry })
    .where(and(inArray(runs.id, runIds), eq(runs.owner, owner)))
    .returning({ id: runs.id });
  return new Set(kept.map((r) => r.id));
}

/** Gives every lease of `owner` back. */
export async function releaseLeases(db: Queryable, owner: string): Promise<void> {
  await db.update(runs).set({ owner: null, leaseExpiresAt: null }).where(eq(runs.owner, owner));
}

/** The run's owner, the row locked until the transaction ends (`for no key update`: a takeover waits for it). */
export async function lockRunOwner(tx: Tx, runId: string): Promise<string | null | undefined> {
  const [row] = await tx.select({ owner: runs.owner }).from(runs).where(eq(runs.id, runId)).for('no key update');
  return row ? row.owner : undefined;
}

/** Every active run, with whether its lease expired (no lease counts as expired). */
export async function activeRunsWithLease(db: Queryable): Promise<{ run: RunRow; expired: boolean }[]> {
  return db
    .select({ run: runs, expired: sql<boolean>`coalesce(${runs.leaseExpiresAt} < now(), true)` })
    .from(runs)
    .where(inArray(runs.status, [...ACTIVE_RUN_STATUSES]));
}

/** The run's owner and whether its lease is still running. */
export async function leaseOf(db: Queryable, runId: string): Promise<{ owner: string | null; live: boolean } | undefined> {
  const [row] = await db
    .select({ owner: runs.owner, live: sql<boolean>`${runs.leaseExpiresAt} > now()` })
    .from(runs)
    .where(eq(runs.id, runId));
  return row;
}
