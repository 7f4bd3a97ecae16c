/**
 * Hosts one run's actor system: the lead and its workers. It starts the lead, watches every
 * snapshot (persisting them, coalesced), and makes sure the run ends with a reason however the
 * actor ends — a lead that crashes still leaves a `failed` run and no task `in_progress`.
 */
import { createActor, waitFor, type Actor, type AnyActorRef, type InspectionEvent, type Snapshot } from 'xstate';
import { withDbRetry } from '../../db/retry.ts';
import { coerceError, conflict, TroupeError } from '../../errors.ts';
import type { Outbox } from '../../events/outbox.ts';
import type { Logger } from '../../logger.ts';
import type { LeadEvent, LeadInput, LeadMachine, PersistInput } from '../../machines/lead.ts';
import type { Intent } from '../../machines/lead-logic.ts';
import { parseWorkerId, type RunStatus } from '../../machines/types.ts';
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

/** Someone waiting for the intents an event queued to be written (see `sendAndPersist`). */
interface WriteWaiter {
  pending: Set<Intent>;
  resolve: () => void;
  reject: (e: Error) => void;
}
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
  private readonly waiters = new Set<WriteWaiter>();

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

  /**
   * The snapshots and state changes not yet written, to commit with the lead's next batch
   * (`batch`: the batch they go with; once it is done, whoever waits for its intents hears).
   */
  async takeSnapshots(batch?: PersistInput): Promise<Companion> {
    const taken = await this.snapshots.take(this.actor);
    const intents = batch?.runId === this.runId ? batch.intents : [];
    return {
      write: (tx, emit) => taken.write(tx, emit),
      done: (committed) => {
        taken.done(committed);
        this.batchDone(intents, committed);
      },
    };
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
   * Sends `event` and resolves once every intent it made the lead queue (task and run status
   * changes, their events) is committed: a control request answered after this reads what it
   * did. Rejects with a `TroupeError` when the lead will not write them — its write failed, it
   * ended or was stopped first, or the run is another process's now. No timers: the writer's
   * own batches say when.
   */
  sendAndPersist(event: LeadEvent): Promise<void> {
    const before = new Set(this.unwritten());
    this.actor.send(event);
    const mine = this.unwritten().filter((i) => !before.has(i));
    if (mine.length === 0) return Promise.resolve();
    if (this.stopped || this.actor.getSnapshot().status !== 'active') return Promise.reject(notWritten('the run ended before it was recorded'));
    return new Promise<void>((resolve, reject) => {
      this.waiters.add({ pending: new Set(mine), resolve, reject });
    });
  }

  /** Intents the lead decided but has not written yet: queued, or in the batch being written. */
  private unwritten(): Intent[] {
    const { queue, batch } = this.actor.getSnapshot().context;
    return [...queue, ...batch];
  }

  private batchDone(intents: readonly Intent[], committed: boolean): void {
    if (this.waiters.size === 0 || intents.length === 0) return;
    for (const waiter of [...this.waiters]) {
      if (!intents.some((i) => waiter.pending.has(i))) continue;
      if (!committed) {
        this.waiters.delete(waiter);
        waiter.reject(new TroupeError('unavailable', 'the run could not record it: its write to the database failed (the run stops); try again'));
        continue;
      }
      for (const i of intents) waiter.pending.delete(i);
      if (waiter.pending.size === 0) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** After each lead step: intents that left the queue without being written (a failing lead drops its queue) never will be. */
  private checkDropped(): void {
    if (this.waiters.size === 0) return;
    const left = new Set(this.unwritten());
    for (const waiter of [...this.waiters]) {
      if ([...waiter.pending].every((i) => left.has(i))) continue;
      this.waiters.delete(waiter);
      waiter.reject(notWritten('the run failed before it was recorded'));
    }
  }

  private rejectWaiters(why: string): void {
    for (const waiter of [...this.waiters]) waiter.reject(notWritten(why));
    this.waiters.clear();
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
    this.rejectWaiters('the run was stopped before it was recorded');
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
    this.rejectWaiters('this process gave the run up (another process executes it now) before it was recorded: try again');
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
      this.checkDropped();
    } else if (ref._parent === this.actor && parseWorkerId(ref.id) !== null) {
      this.snapshots.observe(ref.id, ref, 'worker', ev.snapshot);
    }
  }

  private async finish(error: Error | null): Promise<void> {
    const snapshot = this.actor.getSnapshot();
    // A crashed lead, or one that reached `failed` even though its own last write failed: make
    // sure the run row says so (guarded: a run already final is left as it is).
    const summary = error ? `internal error: ${error.message}` : snapshot.value === 'failed' ? (snapshot.context.summary ?? 'internal error') : null;
    if (error) this.options.logger.error({ err: error, runId: this.runId }, 'lead actor crashed');
    this.rejectWaiters('the run ended before it was recorded');
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

/** A control request whose change the lead will not write: 409, saying why. */
function notWritten(why: string): TroupeError {
  return conflict(`not done: ${why}`);
}
