/**
 * Persists the snapshots of a run's lead and workers as they transition, coalesced: every
 * observed transition marks its actor dirty and is reported as `agent.state_changed`; a flush
 * at most every `FLUSH_MS` writes the latest snapshot of each dirty actor together with those
 * events (one transaction), so a burst of transitions costs one write. Each batch the lead
 * writes also takes whatever is pending into its own transaction (`take`), so the lead's
 * restore point always matches the task rows: a restore re-runs that batch (idempotent) and
 * redoes at most the workers' steps since, whose answers and commits replay safely.
 */
import type { AnyActorRef, Snapshot } from 'xstate';
import type { Tx } from '../../db/client.ts';
import { withDbRetry } from '../../db/retry.ts';
import { upsertSnapshots, type NewActorRow } from '../../db/snapshots.ts';
import { coerceError } from '../../errors.ts';
import type { Outbox } from '../../events/outbox.ts';
import { event, type NewEvent } from '../../events/types.ts';
import type { Logger } from '../../logger.ts';
import { LEAD_MACHINE_VERSION } from '../../machines/lead.ts';
import { WORKER_MACHINE_VERSION, workerStateName } from '../../machines/worker.ts';
import type { Companion } from './lead-writer.ts';
import { isLeaseLost } from './leases.ts';

/** Longest a transition waits before its snapshot and `agent.state_changed` event are written. */
const FLUSH_MS = 100;

interface Scope {
  projectId: string;
  runId: string;
}

interface ObservedSnapshot {
  status: Snapshot<unknown>['status'];
  value?: unknown;
  context?: Record<string, unknown>;
}

/** The lead's `writer` region toggles on every batch: it is bookkeeping, not news. */
export function reportedState(kind: 'lead' | 'worker', value: unknown): unknown {
  // A worker's state by its name (`generating`), not under the `working` parent that groups them.
  if (kind === 'worker') return value === undefined ? value : workerStateName(value);
  if (kind !== 'lead' || typeof value !== 'object' || value === null) return value;
  const active = (value as { active?: unknown }).active;
  if (typeof active !== 'object' || active === null) return value;
  return { active: { schedule: (active as { schedule?: unknown }).schedule } };
}

export class SnapshotWriter {
  private readonly dirty = new Map<string, { ref: AnyActorRef; kind: 'lead' | 'worker' }>();
  private readonly lastReported = new Map<string, string>();
  private events: NewEvent[] = [];
  private scheduled: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  /** A lead batch holding taken rows: nothing else writes until it committed or gave up. */
  private held: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(
    private readonly outbox: Outbox,
    private readonly scope: Scope,
    private readonly logger: Logger,
    /** The run's lease check, in every flush before it commits: a process that lost the run writes none of its snapshots. */
    private readonly fence?: { check(tx: Tx): Promise<void>; lost(): void },
  ) {}

  /** Called for every snapshot of the lead or one of its workers. */
  observe(id: string, ref: AnyActorRef, kind: 'lead' | 'worker', snapshot: ObservedSnapshot): void {
    if (this.closed) return;
    this.dirty.set(id, { ref, kind });
    const reported = reportedState(kind, snapshot.value);
    const key = JSON.stringify(reported);
    if (snapshot.value !== undefined && this.lastReported.get(id) !== key) {
      this.lastReported.set(id, key);
      this.events.push(event('agent.state_changed', { agentId: id, state: reported }, { ...this.scope, agentId: id }));
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = setTimeout(() => {
      this.scheduled = null;
      this.flush();
    }, FLUSH_MS);
  }

  /** Starts a flush (or asks the running one to go again). Never throws. */
  flush(): void {
    if (this.flushing) {
      this.again = true;
      return;
    }
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = null;
    });
  }

  /** Resolves when everything observed so far is written (or failed to write and was logged). */
  async settle(): Promise<void> {
    while (this.flushing || this.held || this.scheduled || this.dirty.size > 0 || this.events.length > 0) {
      if (this.held) {
        await this.held;
        continue;
      }
      if (this.scheduled) {
        clearTimeout(this.scheduled);
        this.scheduled = null;
      }
      if (!this.flushing) this.flush();
      await this.flushing;
    }
  }

  /**
   * Takes every pending snapshot and event for the lead's next batch to write in its own
   * transaction (after a flush already under way, whose changes came first). Until the batch
   * is done no other flush writes, so no older snapshot can overwrite a newer one; a batch that
   * gave up puts what it took back. The lead's own snapshot is always part of it.
   */
  async take(lead: AnyActorRef): Promise<Companion> {
    while (this.flushing || this.held) await (this.flushing ?? this.held);
    this.dirty.set('lead', { ref: lead, kind: 'lead' });
    if (this.scheduled) {
      clearTimeout(this.scheduled);
      this.scheduled = null;
    }
    let release!: () => void;
    this.held = new Promise<void>((resolve) => (release = resolve));
    const dirty = [...this.dirty.entries()];
    const events = this.events;
    this.dirty.clear();
    this.events = [];
    const rows = dirty.map(([id, { ref, kind }]) => this.rowOf(id, ref, kind));
    return {
      write: async (tx, emit) => {
        await upsertSnapshots(tx, rows);
        emit(...events);
      },
      done: (committed) => {
        if (!committed) {
          for (const [id, entry] of dirty) if (!this.dirty.has(id)) this.dirty.set(id, entry);
          this.events = [...events, ...this.events];
        }
        this.held = null;
        release();
        if (!this.closed && (this.dirty.size > 0 || this.events.length > 0)) this.schedule();
      },
    };
  }

  /** Nothing observed from now on is written; what is still pending is dropped (a stop settles first). */
  close(): void {
    this.closed = true;
    if (this.scheduled) {
      clearTimeout(this.scheduled);
      this.scheduled = null;
    }
    this.dirty.clear();
    this.events = [];
  }

  private async flushLoop(): Promise<void> {
    while (this.held) await this.held;
    do {
      this.again = false;
      const dirty = [...this.dirty.entries()];
      const events = this.events;
      this.dirty.clear();
      this.events = [];
      if (dirty.length === 0 && events.length === 0) continue;
      const rows = dirty.map(([id, { ref, kind }]) => this.rowOf(id, ref, kind));
      try {
        await withDbRetry(() =>
          this.outbox.transact(async (tx, emit) => {
            await upsertSnapshots(tx, rows);
            // Last, right before the append and the commit (see `fencedWriter` in records.ts).
            await this.fence?.check(tx);
            emit(...events);
          }),
        );
      } catch (e) {
        if (isLeaseLost(e)) {
          // Another process owns the run: nothing of it is written from here any more.
          this.closed = true;
          this.dirty.clear();
          this.events = [];
          this.fence?.lost();
          return;
        }
        // Snapshots are a view and a restore point, not the source of truth: the run goes on.
        this.logger.warn({ err: coerceError(e), runId: this.scope.runId }, 'snapshot write failed');
      }
    } while (this.again);
  }

  private rowOf(id: string, ref: AnyActorRef, kind: 'lead' | 'worker'): NewActorRow {
    const snapshot = ref.getSnapshot() as ObservedSnapshot;
    const context = snapshot.context ?? {};
    const job = context.job as { taskId?: string } | null | undefined;
    const busy = kind === 'worker' && job?.taskId !== undefined;
    return {
      runId: this.scope.runId,
      actorId: id,
      projectId: this.scope.projectId,
      kind,
      agentType: kind === 'worker' ? ((context.agentType as string | undefined) ?? null) : null,
      machine: kind,
      machineVersion: kind === 'lead' ? LEAD_MACHINE_VERSION : WORKER_MACHINE_VERSION,
      state: kind === 'worker' ? (reportedState(kind, snapshot.value) ?? null) : (snapshot.value ?? null),
      status: snapshot.status,
      taskId: busy ? (job?.taskId ?? null) : null,
      attempt: busy ? ((context.attempt as number | undefined) ?? null) : null,
      snapshot: ref.getPersistedSnapshot?.() ?? {},
      updatedAt: new Date(),
    };
  }
}
