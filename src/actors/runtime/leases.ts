/**
 * Run leases: with several `troupe serve` processes on one database, each active run is executed
 * by exactly one of them. The owner's id and an expiry live on the run row; the owner renews the
 * lease while it hosts the run. When a process dies its leases expire and another process takes
 * the runs over (restoring their leads from the persisted snapshots). Graceful shutdown releases
 * them at once. Postgres is the coordinator: nothing home-made beside it.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { and, eq, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import type { RunRow } from '../../db/queries.ts';
import { runs } from '../../db/schema.ts';

/** Runs that need a lead: a process adopts them when their owner is gone. */
const ACTIVE_STATUSES = ['planning', 'running', 'pausing', 'paused'] as const;

/** Owners alive in this process (several runtimes may share one process, in tests for one). */
const LIVE_HERE = new Set<string>();

export class Leases {
  /** This runtime, as written in `runs.owner`: host, pid and a random part. */
  readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

  constructor(
    private readonly db: Db,
    /** How long a lease lasts without renewal. */
    readonly leaseMs: number,
  ) {
    LIVE_HERE.add(this.owner);
  }

  private expiry() {
    return sql`now() + (${this.leaseMs} * interval '1 millisecond')`;
  }

  /** Takes the run if nobody holds it (or this process already does, or the holder's lease expired). */
  async claim(runId: string): Promise<boolean> {
    const rows = await this.db
      .update(runs)
      .set({ owner: this.owner, leaseExpiresAt: this.expiry() })
      .where(and(eq(runs.id, runId), or(isNull(runs.owner), eq(runs.owner, this.owner), lt(runs.leaseExpiresAt, sql`now()`))))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  /** Values for a run this process creates (it owns it from the start). */
  fresh(): { owner: string; leaseExpiresAt: Date } {
    return { owner: this.owner, leaseExpiresAt: this.expiry() as unknown as Date };
  }

  /** Extends the leases of `runIds`; returns the ones this process no longer holds. */
  async renew(runIds: string[]): Promise<string[]> {
    if (runIds.length === 0) return [];
    const kept = await this.db
      .update(runs)
      .set({ leaseExpiresAt: this.expiry() })
      .where(and(inArray(runs.id, runIds), eq(runs.owner, this.owner)))
      .returning({ id: runs.id });
    const held = new Set(kept.map((r) => r.id));
    return runIds.filter((id) => !held.has(id));
  }

  /**
   * Active runs that no live process holds: their lease expired, or their owner is a process of
   * this host that is gone (a restart after `kill -9` need not wait for the lease to run out).
   */
  async orphans(): Promise<RunRow[]> {
    const active = await this.db.select().from(runs).where(inArray(runs.status, [...ACTIVE_STATUSES]));
    const now = Date.now();
    return active.filter(
      (r) => r.owner === null || (r.owner !== this.owner && ((r.leaseExpiresAt?.getTime() ?? 0) < now || this.deadHere(r.owner))),
    );
  }

  /** Takes a run whose holder is dead (same host, process gone) even though its lease has not run out. */
  async claimFromDead(runId: string, deadOwner: string): Promise<boolean> {
    if (!this.deadHere(deadOwner)) return false;
    const rows = await this.db
      .update(runs)
      .set({ owner: this.owner, leaseExpiresAt: this.expiry() })
      .where(and(eq(runs.id, runId), eq(runs.owner, deadOwner)))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  /** Is `owner` a process of this host that no longer runs? (Our own pid means an earlier life of ours.) */
  deadHere(owner: string): boolean {
    const [host, pidText] = owner.split(':');
    const pid = Number(pidText);
    if (host !== os.hostname() || !Number.isInteger(pid) || pid <= 0) return false;
    // Our own pid: an earlier life of this process (a container's pid 1), unless a runtime here holds it.
    if (pid === process.pid) return !LIVE_HERE.has(owner);
    try {
      process.kill(pid, 0);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  /** The live holder of a run other than this process, if any. */
  async holder(runId: string): Promise<string | null> {
    const [row] = await this.db
      .select({ owner: runs.owner, live: sql<boolean>`${runs.leaseExpiresAt} > now()` })
      .from(runs)
      .where(eq(runs.id, runId));
    return row?.owner && row.owner !== this.owner && row.live ? row.owner : null;
  }

  /** Gives every lease of this process back (graceful shutdown: others may take over at once). */
  async releaseAll(): Promise<void> {
    LIVE_HERE.delete(this.owner);
    await this.db.update(runs).set({ owner: null, leaseExpiresAt: null }).where(eq(runs.owner, this.owner));
  }
}
