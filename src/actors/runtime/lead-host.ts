/**
 * Hosts one run's actor system: the lead and its workers. It starts the lead, watches every
 * snapshot (persisting them, coalesced), and makes sure the run ends with a reason however the
 * actor ends — a lead that crashes still leaves a `failed` run and no task `in_progress`.
 */
import { createActor, waitFor, type Actor, type AnyActorRef, type InspectionEvent, type Snapshot } from 'xstate';
import { withDbRetry } from '../../db/retry.ts';
import { coerceError } from '../../errors.ts';
import type { Outbox } from '../../events/outbox.ts';
import type { Logger } from '../../logger.ts';
import type { LeadEvent, LeadInput, LeadMachine } from '../../machines/lead.ts';
import type { Intent } from '../../machines/lead-logic.ts';
import type { RunStatus } from '../../machines/types.ts';
import { persistBatch, type Companion, type RunFence } from './lead-writer.ts';
import { SnapshotWriter } from './snapshot-writer.ts';

export type Inspector = (event: InspectionEvent, scope: { projectId: string; runId: string }) => void;

export interface LeadHostOptions {
  machine: LeadMachine;
  input: LeadInput;
  /** A persisted snapshot to continue from (its in-flight effects start again from scratch). */
  snapshot?: Snapshot<unknown> | undefined;
  outbox: Outbox;
  logger: Logger;
  inspectors?: readonly Inspector[];
  /** The run's lease check: every write of this host (batches, snapshots, the last word) goes through it. */
  fence?: RunFence;
}

const WORKER_ID = /^(backend|frontend|test)-\d+$/;
/** A final write that takes longer than this is a database in trouble: the caller gets a 409. */
const SETTLE_TIMEOUT_MS = 10_000;

export class LeadHost {
  readonly projectId: string;
  readonly runId: string;
  readonly actor: Actor<LeadMachine>;
  /** Resolves once the lead reached a final state (or crashed) and everything is written. */
  readonly ended: Promise<void>;
  private readonly snapshots: SnapshotWriter;
  private stopped = false;
  private resolveEnded!: () => void;
  private readonly disposers: (() => void)[] = [];

  constructor(private readonly options: LeadHostOptions) {
    this.projectId = options.input.projectId;
    this.runId = options.input.runId;
    const scope = { projectId: this.projectId, runId: this.runId };
    const fence = options.fence;
    this.snapshots = new SnapshotWriter(
      options.outbox,
      scope,
      options.logger,
      fence && { check: (tx) => fence.check(tx, this.runId), lost: () => fence.lost(this.runId) },
    );
    this.ended = new Promise<void>((resolve) => {
      this.resolveEnded = resolve;
    });
    this.actor = createActor(options.machine, {
      id: 'lead',
      input: options.input,
      ...(options.snapshot ? { snapshot: options.snapshot } : {}),
      inspect: (ev) => this.inspect(ev),
    });
    this.actor.subscribe({
      next: (snapshot) => {
        if (snapshot.status === 'done') void this.finish(null);
      },
      error: (err) => {
        void this.finish(coerceError(err));
      },
    });
  }

  start(): void {
    this.actor.start();
  }

  /** Runs `fn` once the host stops or its lead ends (subscriptions tied to the lead's life). */
  onDispose(fn: () => void): void {
    this.disposers.push(fn);
  }

  private dispose(): void {
    for (const fn of this.disposers.splice(0)) fn();
  }

  /** The snapshots and state changes not yet written, to commit with the lead's next batch. */
  takeSnapshots(): Promise<Companion> {
    return this.snapshots.take(this.actor);
  }

  /** Keys of the tasks the lead knows. */
  knows(key: string): boolean {
    return key in this.actor.getSnapshot().context.tasks;
  }

  /** Would the lead accept this event in its current state? (Guards included.) */
  can(event: LeadEvent): boolean {
    const snapshot = this.actor.getSnapshot();
    return snapshot.status === 'active' && snapshot.can(event);
  }

  send(event: LeadEvent): void {
    this.actor.send(event);
  }

  /**
   * Resolves once the lead is out of its transient writing states (`finishing`, `cancelling`,
   * `failing`). Their event is published when the write commits, a moment before the lead moves
   * on: a control request arriving in between waits here instead of being refused.
   */
  async settled(): Promise<void> {
    const transient = (s: ReturnType<Actor<LeadMachine>['getSnapshot']>) =>
      s.status === 'active' && (s.matches('finishing') || s.matches('cancelling') || s.matches('failing'));
    if (!transient(this.actor.getSnapshot())) return;
    await waitFor(this.actor, (s) => !transient(s), { timeout: SETTLE_TIMEOUT_MS }).catch(() => undefined);
  }

  /** The run status the lead's state stands for right now. */
  runStatus(): RunStatus {
    return runStatusOf(this.actor.getSnapshot());
  }

  /**
   * Stops the actors (their effects are aborted). The snapshots written last are the ones from
   * before the stop — an active lead, restorable by the next process — not a `stopped` one.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.dispose();
    await this.snapshots.settle();
    this.snapshots.close();
    this.actor.stop();
  }

  /**
   * Stops the actors at once and writes nothing more: the run is another process's now, or this
   * process could not renew its lease in time. In-flight model calls and test processes are
   * aborted through their signals; what was not written stays unwritten (the new owner restores
   * the run from what was).
   */
  abandon(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.dispose();
    this.snapshots.close();
    this.actor.stop();
  }

  private inspect(ev: InspectionEvent): void {
    for (const inspector of this.options.inspectors ?? []) {
      try {
        inspector(ev, { projectId: this.projectId, runId: this.runId });
      } catch (e) {
        this.options.logger.warn({ err: coerceError(e) }, 'inspector threw');
      }
    }
    if (ev.type !== '@xstate.snapshot') return;
    const ref = ev.actorRef as AnyActorRef;
    if (ref === (this.actor as AnyActorRef)) {
      this.snapshots.observe('lead', ref, 'lead', ev.snapshot);
    } else if (ref._parent === this.actor && WORKER_ID.test(ref.id)) {
      this.snapshots.observe(ref.id, ref, 'worker', ev.snapshot);
    }
  }

  private async finish(error: Error | null): Promise<void> {
    const snapshot = this.actor.getSnapshot();
    // A crashed lead, or one that reached `failed` even though its own last write failed: make
    // sure the run row says so (guarded: a run already final is left as it is).
    const summary = error ? `internal error: ${error.message}` : snapshot.value === 'failed' ? (snapshot.context.summary ?? 'internal error') : null;
    if (error) this.options.logger.error({ err: error, runId: this.runId }, 'lead actor crashed');
    if (summary) {
      await this.failRun(summary).catch((e: unknown) =>
        this.options.logger.error({ err: coerceError(e), runId: this.runId }, 'cannot record the failed run'),
      );
    }
    this.dispose();
    await this.snapshots.settle();
    this.resolveEnded();
  }

  /** The lead is gone: hand in-flight tasks back and fail the run (guarded; a final run stays as is). */
  private async failRun(summary: string): Promise<void> {
    const tasks = this.actor.getSnapshot().context.tasks;
    const intents: Intent[] = Object.values(tasks)
      .filter((t) => t.status === 'in_progress')
      .map((t) => ({ type: 'release', taskId: t.id, key: t.key }));
    intents.push({ type: 'run', status: 'failed', summary });
    await withDbRetry(() =>
      this.options.outbox.transact(async (tx, emit) => {
        await this.options.fence?.check(tx, this.runId);
        return persistBatch(tx, emit, { projectId: this.projectId, runId: this.runId, intents });
      }),
    );
  }
}

/** Lead state → run status. */
export function runStatusOf(snapshot: ReturnType<Actor<LeadMachine>['getSnapshot']>): RunStatus {
  if (snapshot.matches('planning') || snapshot.matches('idle')) return 'planning';
  if (snapshot.matches({ active: { schedule: 'pausing' } })) return 'pausing';
  if (snapshot.matches({ active: { schedule: 'paused' } })) return 'paused';
  if (snapshot.matches('active') || snapshot.matches('finishing')) return 'running';
  if (snapshot.matches('blocked')) return 'blocked';
  if (snapshot.matches('completed')) return 'completed';
  if (snapshot.matches('cancelling') || snapshot.matches('cancelled')) return 'cancelled';
  return 'failed';
}
