/**
 * Run leases: with several `troupe serve` processes on one database, each active run is executed
 * by exactly one of them. The owner's id and an expiry live on the run row; the owner renews the
 * lease while it hosts the run, and every batch it writes checks, in the batch's transaction, that
 * the run is still its own (`fence`). When a process dies another one takes its runs over
 * (restoring their leads from the persisted snapshots). Graceful shutdown releases them at once.
 *
 * Owner liveness (Postgres): each runtime holds a session-level advisory lock derived from its
 * owner id on a connection of its own for as long as it lives. A run whose owner's lock is not
 * held is adopted without waiting for the lease (a `kill -9` closes the session and frees the
 * lock); a held lock means "alive", whatever host name or pid the id carries (containers share
 * both). With PGlite only one process can open the data dir, so an owner that is not a runtime of
 * this process is dead. Postgres is the coordinator: nothing home-made beside it.
 *
 * The lease's SQL is in `db/runs.ts` (the lease lives on the run row); the heartbeat that renews
 * the leases of the runs hosted here, and the self-fence by time, are in `run-hosting.ts`.
 */
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { sql, type SQL } from 'drizzle-orm';
import type { ReservedSql, Sql } from 'postgres';
import type { Store, Tx } from '../../db/client.ts';
import { activeRunsWithLease, claimLease, leaseExpiry, leaseOf, lockRunOwner, releaseLeases, renewLeases, type RunRow } from '../../db/runs.ts';
import { coerceError } from '../../errors.ts';

/** Owners alive in this process (several runtimes may share one process, in tests for one). */
const LIVE_HERE = new Set<string>();

/** A write for a run this process no longer owns: refused, nothing of the batch is written. */
export class LeaseLost extends Error {
  override name = 'LeaseLost';
  constructor(readonly runId: string) {
    super(`run ${runId} is owned by another process now: this process writes nothing more for it`);
  }
}

export function isLeaseLost(e: unknown): e is LeaseLost {
  for (let c: unknown = e, depth = 0; c && depth < 5; depth++) {
    if (c instanceof LeaseLost) return true;
    c = (c as { cause?: unknown }).cause;
  }
  return false;
}

/** The advisory-lock key (int8) that stands for `owner` being alive. */
export function ownerLockKey(owner: string): bigint {
  return createHash('sha256').update(`troupe-owner:${owner}`).digest().readBigInt64BE(0);
}

export interface LeasesOptions {
  /** The id written in `runs.owner` (default: host, pid and a random part). */
  owner?: string;
  /** How often the owner checks its liveness lock and the runtime beats (default: min(1 s, leaseMs / 3)). */
  tickMs?: number;
}

export class Leases {
  /** This runtime, as written in `runs.owner`. */
  readonly owner: string;
  /** The runtime's heartbeat period: renewals, orphan scans, the liveness lock's check. */
  readonly tickMs: number;
  /**
   * An owner whose lock is missing counts as dead once it stayed missing this long (and our own
   * lock was held that long): after a Postgres restart every lock is gone for a moment, and each
   * live process takes its own back within a tick — it must not lose its runs meanwhile.
   */
  readonly graceMs: number;
  private session: ReservedSql | null = null;
  private lockedSince: number | null = null;
  /** Liveness probes in a row that got no answer in time. */
  private slowProbes = 0;
  private readonly absentSince = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly store: Store,
    /** How long a lease lasts without renewal. */
    readonly leaseMs: number,
    options: LeasesOptions = {},
  ) {
    this.owner = options.owner ?? `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.tickMs = options.tickMs ?? Math.max(20, Math.min(1000, Math.floor(leaseMs / 3)));
    this.graceMs = 3 * this.tickMs;
    LIVE_HERE.add(this.owner);
  }

  private get db() {
    return this.store.db;
  }

  private expiry(): SQL {
    return leaseExpiry(this.leaseMs);
  }

  /**
   * Takes (or checks) this runtime's liveness lock. Called at start and on every tick: a session
   * lost to a Postgres restart or a network cut is replaced and the lock taken again. Each step
   * is time-bounded: a query on a connection that died may never answer.
   */
  async keepAlive(): Promise<void> {
    if (this.store.kind !== 'postgres' || this.stopped) return;
    const key = ownerLockKey(this.owner).toString();
    const limit = Math.max(1000, 3 * this.tickMs);
    if (this.session) {
      const session = this.session;
      const held = await within(
        session<{ held: boolean }[]>`
          select exists(select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted
            and objsubid = 1 and ((classid::int8 << 32) | objid::int8) = ${key}::int8) as held`,
        limit,
      ).then(
        (rows) => rows[0]?.held === true,
        (e: unknown) => (e instanceof NoAnswer ? ('slow' as const) : false),
      );
      // A slow answer is not a lost session (a checkpoint, a busy server): the lock is still held
      // server-side while the connection lives. Only repeated silence counts as a dead connection.
      if (held === 'slow' && ++this.slowProbes < 3) return;
      this.slowProbes = 0;
      if (held === true) return;
      this.dropSession(limit);
    }
    const client = (this.db as unknown as { $client: Sql }).$client;
    const reserving = client.reserve();
    const session = await within(reserving, limit).catch((e: unknown) => {
      // A connection handed over after we stopped waiting goes straight back to the pool.
      void reserving.then((late) => late.release(), () => undefined);
      throw e;
    });
    let ok = false;
    try {
      const locking = session<{ ok: boolean }[]>`select pg_try_advisory_lock(${key}::int8) as ok`;
      const [row] = await within(locking, limit).catch((e: unknown) => {
        // The lock may still be granted after we stopped waiting: undo it before the connection
        // goes back to the pool (where it would hold our lock on a session nobody watches).
        void locking
          .then(() => session`select pg_advisory_unlock_all()`, () => undefined)
          .catch(() => undefined)
          .finally(() => session.release());
        throw e;
      });
      ok = row?.ok === true;
    } catch (e) {
      if (!(e instanceof NoAnswer)) session.release();
      throw coerceError(e);
    }
    // Not ok: an earlier session of ours, not yet closed, still holds it (others see us alive); retried next tick.
    if (!ok || this.stopped) {
      session.release();
      return;
    }
    this.session = session;
    this.lockedSince = Date.now();
  }

  private dropSession(limit = 1000): void {
    const session = this.session;
    this.session = null;
    this.lockedSince = null;
    if (!session) return;
    // Unlock before the connection goes back to the pool (a dead one fails or never answers).
    void within(session`select pg_advisory_unlock_all()`, limit)
      .catch(() => undefined)
      .finally(() => session.release());
  }

  /** Which of `owners` are alive: their liveness lock is held now (with PGlite: a runtime of this process). */
  private async held(owners: readonly string[]): Promise<Set<string>> {
    if (this.store.kind !== 'postgres') return new Set(owners.filter((o) => LIVE_HERE.has(o)));
    const result: unknown = await this.db.execute(sql`
      select ((classid::int8 << 32) | objid::int8)::text as key from pg_locks where locktype = 'advisory' and granted
        and objsubid = 1 and database = (select oid from pg_database where datname = current_database())`);
    // postgres.js returns the rows themselves (an array).
    const locks = new Set((result as { key: string }[]).map((r) => r.key));
    return new Set(owners.filter((o) => locks.has(ownerLockKey(o).toString())));
  }

  /** Is `owner`'s liveness lock held right now? (Side-effect free: reads `pg_locks`.) */
  async isAlive(owner: string): Promise<boolean> {
    if (owner === this.owner) return true;
    return (await this.held([owner])).has(owner);
  }

  /**
   * Owners among `owners` that are gone: their lock is missing and stayed missing for the grace
   * period while ours was held (`immediate`: missing now — the scan at start, where a process
   * restarted after `kill -9` continues its runs before it answers). With PGlite, every owner
   * not of this process.
   */
  async dead(owners: readonly string[], immediate = false): Promise<Set<string>> {
    const others = [...new Set(owners)].filter((o) => o !== this.owner);
    const out = new Set<string>();
    if (others.length === 0) return out;
    const held = await this.held(others);
    const now = Date.now();
    for (const o of others) {
      if (held.has(o)) {
        this.absentSince.delete(o);
        continue;
      }
      if (this.store.kind !== 'postgres' || immediate) {
        out.add(o);
        continue;
      }
      const since = this.absentSince.get(o) ?? now;
      this.absentSince.set(o, since);
      if (now - since >= this.graceMs && this.lockedSince !== null && now - this.lockedSince >= this.graceMs) out.add(o);
    }
    for (const o of this.absentSince.keys()) if (!others.includes(o) && now - this.absentSince.get(o)! > 10 * this.graceMs) this.absentSince.delete(o);
    return out;
  }

  /** Takes the run if nobody holds it, this process already does, the holder's lease expired, or `deadOwner` (verified dead) holds it. */
  async claim(runId: string, deadOwner?: string | null, immediate = false): Promise<boolean> {
    const fromDead = deadOwner && deadOwner !== this.owner && (await this.dead([deadOwner], immediate)).has(deadOwner);
    return claimLease(this.db, runId, this.owner, this.expiry(), fromDead ? deadOwner : null);
  }

  /** Values for a run this process creates (it owns it from the start). */
  fresh(): { owner: string; leaseExpiresAt: SQL } {
    return { owner: this.owner, leaseExpiresAt: this.expiry() };
  }

  /**
   * The fence of every write of a run: inside the writing transaction, locks the run row (a
   * takeover waits for this transaction) and throws `LeaseLost` unless this process owns it.
   */
  async fence(tx: Tx, runId: string): Promise<void> {
    if ((await lockRunOwner(tx, runId)) !== this.owner) throw new LeaseLost(runId);
  }

  /** Extends the leases of `runIds`; returns the ones this process no longer holds. */
  async renew(runIds: string[]): Promise<string[]> {
    if (runIds.length === 0) return [];
    const held = await renewLeases(this.db, runIds, this.owner, this.expiry());
    return runIds.filter((id) => !held.has(id));
  }

  /**
   * Active runs this process should take: nobody holds them, their lease expired, their owner is
   * dead, or they are this process's own but no lead of it hosts them (`hostedHere` false: the
   * lead ended while its last write failed, or it was stopped when renewals failed).
   */
  async orphans(hostedHere: (runId: string) => boolean, immediate = false): Promise<RunRow[]> {
    const active = await activeRunsWithLease(this.db);
    const owned = active.filter(({ run }) => run.owner !== null && run.owner !== this.owner).map(({ run }) => run.owner!);
    const dead = await this.dead(owned, immediate);
    return active
      .filter(({ run, expired }) => (run.owner === this.owner ? !hostedHere(run.id) : run.owner === null || expired || dead.has(run.owner)))
      .map(({ run }) => run);
  }

  /** The live holder of a run other than this process (lease not expired, or its liveness lock held), if any. */
  async holder(runId: string): Promise<string | null> {
    const row = await leaseOf(this.db, runId);
    if (!row?.owner || row.owner === this.owner) return null;
    if (row.live) return (await this.dead([row.owner])).has(row.owner) ? null : row.owner;
    return null;
  }

  /** Gives every lease of this process back (graceful shutdown: others may take over at once) and its liveness lock. */
  async releaseAll(): Promise<void> {
    LIVE_HERE.delete(this.owner);
    this.stopped = true;
    try {
      await releaseLeases(this.db, this.owner);
    } finally {
      this.dropSession();
    }
  }
}

/** `work`, or a rejection once `ms` passed. */
/** `within` gave up waiting (the work may still finish later). */
class NoAnswer extends Error {
  override name = 'NoAnswer';
}

function within<T>(work: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new NoAnswer(`no answer within ${ms} ms`)), ms);
    timer.unref();
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(coerceError(e));
      },
    );
  });
}
