/**
 * Run hosting: which runs this process executes, and keeping it so. It holds the leads hosted
 * here (one per project), claims each run's lease before hosting it, renews the leases on a
 * heartbeat, stops a lead whose lease was lost or not renewed in time (self-fence), adopts the
 * active runs no live process holds, and launches a lead — restored from its snapshot, or
 * rebuilt from the task rows — with tasks added later reaching it from the event log.
 */
import type { Store } from '../../db/client.ts';
import { latestRuns, type RunRow } from '../../db/runs.ts';
import { dependencyKeys, tasksOf } from '../../db/tasks.ts';
import { coerceError, conflict, type TroupeError } from '../../errors.ts';
import type { EventBus } from '../../events/bus.ts';
import type { Outbox } from '../../events/outbox.ts';
import type { Logger } from '../../logger.ts';
import type { LeadEvent, LeadInput, LeadMachine } from '../../machines/lead.ts';
import { ACTIVE_RUN_STATUSES, type RunStatus } from '../../machines/types.ts';
import type { InspectionHub } from './inspection.ts';
import { createLeadMachine, type LeadEffectsOptions } from './lead-effects.ts';
import { LeadHost, type Inspector } from './lead-host.ts';
import { releaseStale, restorableSnapshot, settingsOf, workerSeq } from './lead-input.ts';
import type { RunFence } from './lead-writer.ts';
import { LeaseLost, type Leases } from './leases.ts';
import type { ProjectService } from './projects.ts';
import { taskViewOf } from './views.ts';

/** A hosted lead gives its run up locally once its lease was last extended this long ago (of `leaseMs`). */
const SELF_FENCE_AT = 0.75;

export const ACTIVE: ReadonlySet<RunStatus> = new Set(ACTIVE_RUN_STATUSES);

export interface RunHostingOptions {
  store: Store;
  bus: EventBus;
  logger: Logger;
  outbox: Outbox;
  leases: Leases;
  projects: ProjectService;
  inspection: InspectionHub;
  inspectors?: Inspector[] | undefined;
  /** Adopt runs whose owner died, and resume this process's own at start (off for tests sharing a database). */
  resume?: boolean | undefined;
  effects: Omit<LeadEffectsOptions, 'outbox' | 'fence' | 'snapshotsOf'>;
  /** Called after every heartbeat while accepting work (the control relay's catch-up read). */
  afterBeat: () => void;
}

export class RunHosting {
  /** The lease check of every write of a run hosted here (batches, snapshots, records). */
  readonly fence: RunFence;
  private readonly machine: LeadMachine;
  private readonly hosts = new Map<string, LeadHost>();
  private accepting = true;
  private heartbeat: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | null = null;
  private keeping: Promise<void> | null = null;
  /** Runs being launched here (claimed, lead not yet hosted): not orphans. */
  private readonly launching = new Set<string>();
  /**
   * Adoptions and launches under way, by run: a second one (the heartbeat and a control request
   * deciding together that an owner died) joins the first instead of hosting the run twice.
   */
  private readonly adopting = new Map<string, Promise<boolean>>();
  private readonly launches = new Map<string, Promise<LeadHost>>();
  /** When each hosted run's lease was last extended (the statement's send time, local clock). */
  private readonly confirmed = new Map<string, number>();

  constructor(private readonly o: RunHostingOptions) {
    this.fence = {
      check: async (tx, runId) => {
        // A run this process gave up (lost, or self-fenced) is not written for by what is left of
        // its old lead and workers, even before the database says another process owns it.
        if (!this.hosting(runId)) throw new LeaseLost(runId);
        await this.o.leases.fence(tx, runId);
      },
      lost: (runId) => this.lose(runId, 'lease lost: another process owns the run now; this one stops it and writes nothing more'),
      // The same check, its statement half made by the write's events' append (lead-writer.ts).
      rowFence: (runId) => {
        if (!this.hosting(runId)) throw new LeaseLost(runId);
        return { runId, owner: this.o.leases.owner, failed: () => new LeaseLost(runId) };
      },
    };
    this.machine = createLeadMachine({
      ...o.effects,
      outbox: o.outbox,
      fence: this.fence,
      snapshotsOf: async (input) => this.hosts.get(input.projectId)?.takeSnapshots(input),
    });
  }

  /** Still taking work (false once `stopBeating` began). */
  get isAccepting(): boolean {
    return this.accepting;
  }

  /** Continues every active run no live process holds, then starts the heartbeat and the self-fence. */
  async start(): Promise<void> {
    const leases = this.o.leases;
    if (this.o.resume !== false) await this.adoptOrphans(true);
    this.heartbeat = setInterval(() => {
      this.beating ??= this.beat().finally(() => (this.beating = null));
    }, leases.tickMs);
    this.heartbeat.unref();
    // Apart from the heartbeat, which may hang on an unreachable database.
    this.fenceTimer = setInterval(() => this.selfFence(), Math.max(10, Math.min(leases.tickMs, leases.leaseMs / 10)));
    this.fenceTimer.unref();
  }

  /** One heartbeat: keep the liveness lock, renew the leases held, let go of runs lost to another process, adopt orphans. */
  private async beat(): Promise<void> {
    // Apart from the beat: a session that died may take a while to be replaced.
    this.keeping ??= this.o.leases
      .keepAlive()
      .catch((e: unknown) => this.o.logger.warn({ err: coerceError(e) }, 'cannot take the liveness lock'))
      .finally(() => (this.keeping = null));
    try {
      const hosted = [...this.hosts.values()];
      const sent = Date.now();
      const lost = new Set(await this.o.leases.renew(hosted.map((h) => h.runId)));
      for (const host of hosted) {
        // Another process holds the run now (this one stalled past its lease): stop, write nothing.
        if (lost.has(host.runId)) this.lose(host.runId, 'lease lost: another process executes the run');
        else this.confirmed.set(host.runId, sent);
      }
      if (this.o.resume !== false && this.accepting) await this.adoptOrphans();
    } catch (e) {
      this.o.logger.warn({ err: coerceError(e) }, 'lease heartbeat failed');
    }
    // NOTIFY is a hint: requests sent while it was lost are found here.
    if (this.accepting) this.o.afterBeat();
  }

  /**
   * Self-fencing by time: a lead whose lease could not be extended for most of its length (the
   * database unreachable, this process stalled) is stopped here before another process may
   * adopt the run, so no model call, test process or merge of it goes on in two places.
   */
  private selfFence(): void {
    const limit = Date.now() - SELF_FENCE_AT * this.o.leases.leaseMs;
    for (const host of [...this.hosts.values()]) {
      const at = this.confirmed.get(host.runId);
      if (at !== undefined && at < limit) this.lose(host.runId, 'lease not renewed in time: this process stops the run before another may adopt it');
    }
  }

  /** Stops the run's lead here at once, writing nothing more for it (its effects are aborted). */
  private lose(runId: string, why: string): void {
    for (const [projectId, host] of this.hosts) {
      if (host.runId !== runId) continue;
      this.o.logger.warn({ runId, projectId }, why);
      this.hosts.delete(projectId);
      this.confirmed.delete(runId);
      host.abandon();
    }
  }

  /** Is the run hosted here, or being launched or adopted here? */
  hosting(runId: string): boolean {
    return this.launching.has(runId) || this.adopting.has(runId) || this.launches.has(runId) || [...this.hosts.values()].some((h) => h.runId === runId);
  }

  /** Runs `fn` with `runId` counted as hosted here: a run being started is not an orphan of this process. */
  async reserving<T>(runId: string, fn: () => Promise<T>): Promise<T> {
    this.launching.add(runId);
    try {
      return await fn();
    } finally {
      this.launching.delete(runId);
    }
  }

  /** `atStart`: an owner whose liveness lock is missing is dead at once (no grace: see `Leases.dead`). */
  private async adoptOrphans(atStart = false): Promise<void> {
    for (const run of await this.o.leases.orphans((id) => this.hosting(id), atStart)) {
      await this.adopt(run, atStart).catch((e: unknown) => this.o.logger.error({ err: coerceError(e), runId: run.id }, 'cannot resume run'));
    }
  }

  /** Takes an active run over and hosts its lead here, unless another live process holds it. */
  adopt(run: RunRow, atStart = false): Promise<boolean> {
    const under = this.adopting.get(run.id);
    if (under) return under;
    if (this.hosting(run.id)) return Promise.resolve(true);
    // Reserved before the first await: nothing else adopts or launches this run meanwhile.
    const work = (async () => {
      if (!ACTIVE.has(run.status as RunStatus) || !(await this.o.leases.claim(run.id, run.owner, atStart))) return false;
      const start = run.status === 'planning' ? 'plan' : run.status === 'running' ? 'running' : 'paused';
      await this.launch(run, start);
      return true;
    })().finally(() => this.adopting.delete(run.id));
    this.adopting.set(run.id, work);
    return work;
  }

  /** Stops taking work: the heartbeat and the self-fence end (waiting for a beat under way). */
  async stopBeating(): Promise<void> {
    this.accepting = false;
    clearInterval(this.heartbeat);
    clearInterval(this.fenceTimer);
    await this.beating;
    await this.keeping;
  }

  /** Stops every lead hosted here (aborting in-flight effects). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.stop()));
    this.hosts.clear();
  }

  /** The lead hosting the project's current run, if any. */
  host(projectId: string): LeadHost | undefined {
    return this.hosts.get(projectId);
  }

  /** The project's lead once it is out of a transient writing state (it may have ended meanwhile). */
  async settledHost(projectId: string): Promise<LeadHost | undefined> {
    const host = this.hosts.get(projectId);
    if (!host) return undefined;
    await host.settled();
    return this.hosts.get(projectId);
  }

  /** Stops a lead that no longer hosts the project's run (superseded by a new run, or its project deleted). */
  async dismiss(projectId: string, host: LeadHost): Promise<void> {
    this.hosts.delete(projectId);
    await host.stop();
  }

  /**
   * Starts a lead for `run`: restored from its persisted snapshot when one exists and both
   * machines still have the versions it was written with; otherwise rebuilt from the task rows
   * (in-flight tasks go back to the queue). Either way, recorded model answers are reused.
   */
  launch(run: RunRow, start: LeadInput['start']): Promise<LeadHost> {
    const under = this.launches.get(run.id);
    if (under) return under;
    const hosted = this.hosts.get(run.projectId);
    if (hosted?.runId === run.id) return Promise.resolve(hosted);
    const work = this.launchClaimed(run, start).finally(() => this.launches.delete(run.id));
    this.launches.set(run.id, work);
    return work;
  }

  private async launchClaimed(run: RunRow, start: LeadInput['start']): Promise<LeadHost> {
    const db = this.o.store.db;
    const sent = Date.now();
    if (!(await this.o.leases.claim(run.id, run.owner))) throw await this.elsewhere(run.id);
    this.confirmed.set(run.id, sent);
    const project = await this.o.projects.row(run.projectId);
    const snapshot = await restorableSnapshot(db, run.id);
    if (!snapshot) await releaseStale(this.o.outbox, this.o.leases, run);
    const [taskRows, deps, seq] = await Promise.all([tasksOf(db, run.projectId), dependencyKeys(db, run.projectId), workerSeq(db, run.id)]);
    const host = new LeadHost({
      machine: this.machine,
      outbox: this.o.outbox,
      logger: this.o.logger.child({ projectId: run.projectId, runId: run.id }),
      inspectors: [(ev, scope) => this.o.inspection.observe(scope.projectId, ev), ...(this.o.inspectors ?? [])],
      snapshot,
      fence: this.fence,
      input: {
        projectId: run.projectId,
        runId: run.id,
        start: start === 'plan' && taskRows.length > 0 ? 'running' : start,
        goal: project.goal,
        settings: settingsOf(project),
        tasks: taskRows.map((r) => taskViewOf(r, deps.get(r.id) ?? [])),
        workerSeq: seq,
      },
    });
    this.hosts.set(run.projectId, host);
    this.watchNewTasks(host);
    void host.ended.then(() => {
      if (this.hosts.get(run.projectId) !== host) return;
      this.hosts.delete(run.projectId);
      this.confirmed.delete(run.id);
    });
    host.start();
    return host;
  }

  /**
   * Tasks added while a run is active — through this process or another one — reach its lead
   * from the event log: `task.created` events for tasks it does not know become TASKS_ADDED.
   */
  private watchNewTasks(host: LeadHost): void {
    const db = this.o.store.db;
    const pending = new Set<string>();
    let loading = false;
    const load = async () => {
      loading = true;
      try {
        while (pending.size > 0) {
          const keys = new Set(pending);
          pending.clear();
          const [rows, deps] = await Promise.all([tasksOf(db, host.projectId), dependencyKeys(db, host.projectId)]);
          const views = rows.filter((r) => keys.has(r.key) && !host.knows(r.key)).map((r) => taskViewOf(r, deps.get(r.id) ?? []));
          const e: LeadEvent = { type: 'TASKS_ADDED', tasks: views };
          if (views.length > 0 && host.can(e)) host.send(e);
        }
      } catch (err) {
        // The finishing write checks for unknown tasks anyway: nothing is lost.
        this.o.logger.warn({ err: coerceError(err), projectId: host.projectId }, 'cannot load new tasks');
      } finally {
        loading = false;
      }
    };
    const sub = this.o.bus.subscribe({ projectId: host.projectId, types: ['task.created'] }, (e) => {
      const key = (e.data as { key: string }).key;
      if (host.knows(key)) return;
      pending.add(key);
      if (!loading) void load();
    });
    host.onDispose(() => sub.close());
  }

  /** The 409 for a run another live process took while this request was on its way (rare: requests are carried to the owner). */
  async elsewhere(runId: string): Promise<TroupeError> {
    const holder = await this.o.leases.holder(runId);
    return conflict(`the run moved to another troupe process${holder ? ` (${holder})` : ''} while the request was on its way: send it again`, { owner: holder });
  }

  /** When no lead here hosts the project's run: is it because another process does? */
  async assertNotElsewhere(projectId: string): Promise<void> {
    const latest = (await latestRuns(this.o.store.db, [projectId])).get(projectId);
    if (latest && (await this.o.leases.holder(latest.id))) throw await this.elsewhere(latest.id);
  }

  /** The other live process that executes `run`, if any (a run whose lease expired or whose owner is dead has none). */
  async remoteOwner(run: RunRow): Promise<string | null> {
    if (!run.owner || run.owner === this.o.leases.owner) return null;
    if (!ACTIVE.has(run.status as RunStatus) && run.status !== 'blocked') return null;
    return (await this.o.leases.holder(run.id)) ?? null;
  }
}
