/**
 * The runtime: the one place a machine meets persistence. It hosts one lead per active run,
 * wires the effects to the database, resumes runs after a restart and shuts down in two
 * phases. Control operations validate, persist or send an event to the lead, and return: they
 * never wait for agent work.
 */
import { createPreflight } from '../preflight.ts';
import { createBaselineStore } from './baseline-records.ts';
import path from 'node:path';
import type Anthropic from '@anthropic-ai/sdk';
import { and, asc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { AnyActorRef, AnyStateMachine, Snapshot } from 'xstate';
import type { Store } from '../../db/client.ts';
import {
  actorsOfRun,
  dependencyKeys,
  latestRuns,
  runById,
  runsOf,
  taskByRef,
  tasksOf,
  usageByProject,
  usageGrouped,
  type ProjectRow,
  type RunRow,
} from '../../db/queries.ts';
import { withDbRetry } from '../../db/retry.ts';
import { actorSnapshots, agents, projects as projectsTable, runs, tasks as tasksTable } from '../../db/schema.ts';
import { normalizeConfig, patchProjectSchema, type CreateProject, type PatchProject, type TaskInput } from '../../domain/inputs.ts';
import { coerceError, conflict, invalid, notFound, TroupeError, unprocessable } from '../../errors.ts';
import type { EventBus } from '../../events/bus.ts';
import { Outbox } from '../../events/outbox.ts';
import { readEvents } from '../../events/log.ts';
import { event } from '../../events/types.ts';
import { newId } from '../../ids.ts';
import type { Logger } from '../../logger.ts';
import { LEAD_MACHINE_VERSION, leadMachine, type LeadEvent, type LeadInput, type LeadMachine, type LeadSettings } from '../../machines/lead.ts';
import { decideReview, requeue, type Intent } from '../../machines/lead-logic.ts';
import { ACTIVE_RUN_STATUSES, parseWorkerId, type AgentType, type RunStatus } from '../../machines/types.ts';
import { WORKER_MACHINE_VERSION, workerMachine } from '../../machines/worker.ts';
import { cachedJournal } from '../model/journal.ts';
import { createPlan } from '../model/plan.ts';
import { createWorkerEffects, taskAttemptsDir } from '../worker-effects.ts';
import { attemptChanges, taskChanges } from '../workspace/attempts.ts';
import { diffChanges, type FileDiff } from '../workspace/diff.ts';
import { toMermaid } from './diagram.ts';
import { InspectionHub, type InspectionListener } from './inspection.ts';
import { LeadHost, type Inspector } from './lead-host.ts';
import { ControlRelay, OWNER_GONE, errorOfAnswer, type ControlAnswer, type ControlRequest } from './control-relay.ts';
import { createPersist, persistBatch, type RunFence } from './lead-writer.ts';
import { createKeyedMutex } from '../keyed-mutex.ts';
import { LeaseLost, Leases } from './leases.ts';
import { ProjectService } from './projects.ts';
import { createRecords } from './records.ts';
import { sanitize } from './sanitize.ts';
import { actorJson, runJson, taskJson, taskViewOf, usageJson, type RunJson, type TaskJson } from './views.ts';

export interface RuntimeOptions {
  store: Store;
  bus: EventBus;
  logger: Logger;
  client: Anthropic;
  dataDir: string;
  workspaceRoot?: string | undefined;
  childEnv: Record<string, string>;
  maxTokens?: number;
  modelTimeoutMs?: number;
  inspectors?: Inspector[];
  /** Resume runs a previous process left active, and adopt runs whose owner died (default true; off for tests sharing a database). */
  resume?: boolean;
  /** `config.sandbox.mode` of new projects that do not say (`TROUPE_SANDBOX`; default bwrap). */
  sandboxMode?: 'bwrap' | 'none';
  /** Lease on each hosted run (default 30 s), renewed every second (at most a third of it). */
  leaseMs?: number;
  /** Longest wait for the owner's answer to a control request carried to it (default 10 s). */
  controlTimeoutMs?: number;
}

/** Control requests carried to the owner of the run, by their name in `control_requests.action`. */
type ControlAction = 'start' | 'pause' | 'resume' | 'cancel' | 'retry' | 'cancel_task' | 'approve' | 'reject' | 'patch';

const taskArgs = z.object({ ref: z.string(), guidance: z.string().optional() });

/** A hosted lead gives its run up locally once its lease was last extended this long ago (of `leaseMs`). */
const SELF_FENCE_AT = 0.75;

const ACTIVE: ReadonlySet<RunStatus> = new Set(ACTIVE_RUN_STATUSES);

const MACHINES: { name: string; version: number; machine: AnyStateMachine }[] = [
  { name: 'lead', version: LEAD_MACHINE_VERSION, machine: leadMachine },
  { name: 'worker', version: WORKER_MACHINE_VERSION, machine: workerMachine },
];

export class Runtime {
  readonly outbox: Outbox;
  readonly projects: ProjectService;
  private readonly machine: LeadMachine;
  private readonly hosts = new Map<string, LeadHost>();
  private readonly inspection = new InspectionHub();
  private accepting = true;
  private stopping: Promise<void> | null = null;
  readonly leases: Leases;
  private heartbeat: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | null = null;
  private keeping: Promise<void> | null = null;
  private readonly relay: ControlRelay;
  private readonly fence: RunFence;
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

  constructor(private readonly o: RuntimeOptions) {
    this.outbox = new Outbox(o.store, o.bus);
    this.leases = new Leases(o.store, o.leaseMs ?? 30_000);
    this.fence = {
      check: async (tx, runId) => {
        // A run this process gave up (lost, or self-fenced) is not written for by what is left of
        // its old lead and workers, even before the database says another process owns it.
        if (!this.hosting(runId)) throw new LeaseLost(runId);
        await this.leases.fence(tx, runId);
      },
      lost: (runId) => this.lose(runId, 'lease lost: another process owns the run now; this one stops it and writes nothing more'),
    };
    this.relay = new ControlRelay({
      store: o.store,
      owner: this.leases.owner,
      logger: o.logger.child({ part: 'control' }),
      execute: (request) => this.execute(request),
      isDead: async (owner) => (await this.leases.dead([owner])).has(owner),
      timeoutMs: o.controlTimeoutMs,
    });
    this.projects = new ProjectService({ outbox: this.outbox, dataDir: o.dataDir, workspaceRoot: o.workspaceRoot, sandboxMode: o.sandboxMode, childEnv: o.childEnv });
    const records = createRecords(this.outbox, this.fence);
    const model = { client: o.client, journal: cachedJournal(records), timeoutMs: o.modelTimeoutMs };
    const maxTokens = o.maxTokens ?? 16_000;
    const worker = workerMachine.provide({
      actors: createWorkerEffects({
        ...model,
        tasks: records,
        budget: records,
        maxTokens,
        recorder: records,
        worktreesRoot: path.join(o.dataDir, 'worktrees'),
        childEnv: o.childEnv,
        sandboxHide: [o.dataDir],
        attemptsRoot: path.join(o.dataDir, 'attempts'),
        lockProject: createKeyedMutex(),
      }),
    });
    this.machine = leadMachine.provide({
      actors: {
        worker,
        persist: createPersist(this.outbox, async (input) => this.hosts.get(input.projectId)?.takeSnapshots(input), this.fence),
        plan: createPlan({ ...model, budget: records, plans: records, maxTokens }),
        preflight: createPreflight({
          store: createBaselineStore(this.outbox, this.fence),
          worktreesRoot: path.join(o.dataDir, 'worktrees'),
          childEnv: o.childEnv,
          sandboxHide: [o.dataDir],
        }),
      },
    });
  }

  private get db() {
    return this.o.store.db;
  }

  /**
   * Takes this runtime's liveness lock, continues every active run that no live process holds
   * (left by a previous process, or by one that died), then keeps the leases of its runs fresh,
   * keeps adopting orphans and answers control requests carried to it.
   */
  async start(): Promise<void> {
    await this.o.bus.start();
    await this.leases.keepAlive();
    await this.relay.start();
    if (this.o.resume !== false) await this.adoptOrphans(true);
    this.heartbeat = setInterval(() => {
      this.beating ??= this.beat().finally(() => (this.beating = null));
    }, this.leases.tickMs);
    this.heartbeat.unref();
    // Apart from the heartbeat, which may hang on an unreachable database.
    this.fenceTimer = setInterval(() => this.selfFence(), Math.max(10, Math.min(this.leases.tickMs, this.leases.leaseMs / 10)));
    this.fenceTimer.unref();
  }

  /** One heartbeat: keep the liveness lock, renew the leases held, let go of runs lost to another process, adopt orphans. */
  private async beat(): Promise<void> {
    // Apart from the beat: a session that died may take a while to be replaced.
    this.keeping ??= this.leases
      .keepAlive()
      .catch((e: unknown) => this.o.logger.warn({ err: coerceError(e) }, 'cannot take the liveness lock'))
      .finally(() => (this.keeping = null));
    try {
      const hosted = [...this.hosts.values()];
      const sent = Date.now();
      const lost = new Set(await this.leases.renew(hosted.map((h) => h.runId)));
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
    if (this.accepting) this.relay.serve();
  }

  /**
   * Self-fencing by time: a lead whose lease could not be extended for most of its length (the
   * database unreachable, this process stalled) is stopped here before another process may
   * adopt the run, so no model call, test process or merge of it goes on in two places.
   */
  private selfFence(): void {
    const limit = Date.now() - SELF_FENCE_AT * this.leases.leaseMs;
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

  private hosting(runId: string): boolean {
    return this.launching.has(runId) || this.adopting.has(runId) || this.launches.has(runId) || [...this.hosts.values()].some((h) => h.runId === runId);
  }

  /** `atStart`: an owner whose liveness lock is missing is dead at once (no grace: see `Leases.dead`). */
  private async adoptOrphans(atStart = false): Promise<void> {
    for (const run of await this.leases.orphans((id) => this.hosting(id), atStart)) {
      await this.adopt(run, atStart).catch((e: unknown) => this.o.logger.error({ err: coerceError(e), runId: run.id }, 'cannot resume run'));
    }
  }

  /** Takes an active run over and hosts its lead here, unless another live process holds it. */
  private adopt(run: RunRow, atStart = false): Promise<boolean> {
    const under = this.adopting.get(run.id);
    if (under) return under;
    if (this.hosting(run.id)) return Promise.resolve(true);
    // Reserved before the first await: nothing else adopts or launches this run meanwhile.
    const work = (async () => {
      if (!ACTIVE.has(run.status as RunStatus) || !(await this.leases.claim(run.id, run.owner, atStart))) return false;
      const start = run.status === 'planning' ? 'plan' : run.status === 'running' ? 'running' : 'paused';
      await this.launch(run, start);
      return true;
    })().finally(() => this.adopting.delete(run.id));
    this.adopting.set(run.id, work);
    return work;
  }

  /** Stops accepting work, stops every lead (aborting in-flight effects) and waits for pending writes. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.accepting = false;
      clearInterval(this.heartbeat);
      clearInterval(this.fenceTimer);
      await this.beating;
      await this.keeping;
      await this.relay.stop();
      await Promise.all([...this.hosts.values()].map((h) => h.stop()));
      this.hosts.clear();
      await this.outbox.drain();
      // Others may take the runs over at once instead of waiting for the leases to expire.
      await this.leases.releaseAll().catch((e: unknown) => this.o.logger.warn({ err: coerceError(e) }, 'cannot release leases'));
    })();
    return this.stopping;
  }

  private assertAccepting(): void {
    if (!this.accepting) throw new TroupeError('conflict', 'the service is shutting down');
  }

  /** The lead hosting the project's current run, if any (tests and views use it). */
  host(projectId: string): LeadHost | undefined {
    return this.hosts.get(projectId);
  }

  /** The project's lead once it is out of a transient writing state (it may have ended meanwhile). */
  private async settledHost(projectId: string): Promise<LeadHost | undefined> {
    const host = this.hosts.get(projectId);
    if (!host) return undefined;
    await host.settled();
    return this.hosts.get(projectId);
  }

  // ── projects and tasks ───────────────────────────────────────────────────────────────

  createProject(input: CreateProject) {
    this.assertAccepting();
    return this.projects.create(input);
  }

  listProjects() {
    return this.projects.list();
  }

  getProject(id: string) {
    return this.projects.get(id);
  }

  /** Changes a project; with a run that another process executes, that process does it (and tells its lead). */
  updateProject(id: string, patch: PatchProject) {
    return this.routed(id, 'patch', { patch }, () => this.updateHere(id, patch));
  }

  private async updateHere(id: string, patch: PatchProject) {
    const row = await this.projects.patch(id, patch);
    let host = await this.settledHost(id);
    if (!host && patch.config?.budgetUsd !== undefined) {
      const latest = (await latestRuns(this.db, [id])).get(id);
      if (latest?.status === 'blocked' && !(await this.leases.holder(latest.id))) host = await this.launch(latest, 'blocked');
    }
    if (host) {
      const e: LeadEvent = { type: 'SETTINGS_UPDATED', settings: settingsOf(row) };
      if (host.can(e)) host.send(e);
    }
    return this.projects.get(id);
  }

  /** Deletes a project without an active run (checked in the deleting transaction: a start waits for it, or it for the start). */
  async deleteProject(id: string): Promise<void> {
    await this.projects.remove(id);
    // A lead left here (a blocked run) belonged to the deleted run: its writes are fenced off already.
    const host = this.hosts.get(id);
    if (host && !ACTIVE.has(host.runStatus())) {
      this.hosts.delete(id);
      await host.stop();
    }
  }

  async addTasks(projectId: string, inputs: TaskInput[]): Promise<TaskJson[]> {
    this.assertAccepting();
    const host = this.hosts.get(projectId);
    // The lead hears of them through their `task.created` events (see watchNewTasks).
    return this.projects.addTasks(projectId, inputs, host?.runId ?? null);
  }

  listTasks(projectId: string) {
    return this.projects.tasks(projectId);
  }

  getTask(projectId: string, ref: string) {
    return this.projects.task(projectId, ref);
  }

  /**
   * Re-queues a failed, blocked or cancelled task and the tasks blocked behind it. A blocked
   * run resumes by itself; with no run, the next start picks them up.
   */
  retryTask(projectId: string, ref: string, guidance?: string): Promise<TaskJson> {
    this.assertAccepting();
    return this.routed(projectId, 'retry', { ref, guidance }, () => this.retryHere(projectId, ref, guidance));
  }

  private async retryHere(projectId: string, ref: string, guidance?: string): Promise<TaskJson> {
    await this.projects.row(projectId);
    const row = await taskByRef(this.db, projectId, ref);
    if (!row) throw notFound('task');
    if (!['failed', 'blocked', 'cancelled'].includes(row.status)) {
      throw conflict(`task ${row.key} is ${row.status}: only failed, blocked or cancelled tasks can be retried`);
    }
    let host = await this.settledHost(projectId);
    if (!host) {
      await this.assertNotElsewhere(projectId);
      const latest = (await latestRuns(this.db, [projectId])).get(projectId);
      if (latest?.status === 'blocked') host = await this.launch(latest, 'blocked');
    }
    const e: LeadEvent = { type: 'RETRY', key: row.key, guidance: guidance ?? null };
    if (host?.can(e)) {
      // Answered with the task as the retry left it: once the lead's write of it committed.
      await host.sendAndPersist(e);
    } else if (host) {
      throw conflict(`the run is ${host.runStatus()}: it cannot take a retry now`);
    } else {
      await this.requeueWithoutRun(projectId, row.key, guidance);
    }
    return this.taskJson(projectId, row.id);
  }

  /**
   * A person's decision about a task in `review`: approved, its change is merged and the task
   * completes; rejected, the change is discarded and, with guidance, corrected (otherwise the task
   * ends `blocked`, `review_rejected`). Either way a worker of the run does it: a blocked run
   * resumes by itself; with no run, the next start picks it up. Answers with the task row once
   * the decision is written (`pending`, queued for that worker — or already `in_progress` when
   * a worker was free and took it in the same write).
   */
  reviewTask(projectId: string, ref: string, decision: 'approved' | 'rejected', guidance?: string): Promise<TaskJson> {
    this.assertAccepting();
    const action = decision === 'approved' ? 'approve' : 'reject';
    return this.routed(projectId, action, { ref, guidance }, () => this.reviewHere(projectId, ref, decision, guidance));
  }

  private async reviewHere(projectId: string, ref: string, decision: 'approved' | 'rejected', guidance?: string): Promise<TaskJson> {
    await this.projects.row(projectId);
    const row = await taskByRef(this.db, projectId, ref);
    if (!row) throw notFound('task');
    const verb = decision === 'approved' ? 'approved' : 'rejected';
    if (row.status !== 'review' || !row.review) throw conflict(`task ${row.key} is ${row.status}: only a task in review can be ${verb}`);
    let host = await this.settledHost(projectId);
    if (!host) {
      await this.assertNotElsewhere(projectId);
      const latest = (await latestRuns(this.db, [projectId])).get(projectId);
      if (latest?.status === 'blocked') host = await this.launch(latest, 'blocked');
    }
    const e: LeadEvent = { type: 'REVIEW', key: row.key, decision, guidance: guidance ?? null };
    if (host?.can(e)) {
      await host.sendAndPersist(e);
    } else if (host) {
      throw conflict(`the run is ${host.runStatus()}: it cannot take a review decision now`);
    } else {
      await this.outbox.transact(async (tx, emit) => {
        const deps = await dependencyKeys(tx, projectId);
        const { intents } = decideReview({ [row.key]: taskViewOf(row, deps.get(row.id) ?? []) }, row.key, decision, guidance ?? null);
        await persistBatch(tx, emit, { projectId, runId: '', intents });
      });
    }
    return this.taskJson(projectId, row.id);
  }

  /**
   * What the task's kept attempts (of its current retry) changed, against the tree it started
   * from; with `attempt`, what that attempt wrote (also when it was rejected and undone).
   */
  async taskDiff(projectId: string, ref: string, attempt?: number): Promise<FileDiff[]> {
    await this.projects.row(projectId);
    const row = await taskByRef(this.db, projectId, ref);
    if (!row) throw notFound('task');
    const root = taskAttemptsDir(path.join(this.o.dataDir, 'attempts'), projectId, row.id);
    if (attempt === undefined) return diffChanges(await taskChanges(root, row.epoch));
    const changes = await attemptChanges(root, row.epoch, attempt);
    if (changes === null) throw notFound(`attempt ${attempt} of task ${row.key}`);
    return diffChanges(changes);
  }

  /** Aborts the task's in-flight work; the task ends `cancelled` and nothing writes it back. */
  cancelTask(projectId: string, ref: string): Promise<TaskJson> {
    return this.routed(projectId, 'cancel_task', { ref }, () => this.cancelTaskHere(projectId, ref));
  }

  private async cancelTaskHere(projectId: string, ref: string): Promise<TaskJson> {
    await this.projects.row(projectId);
    const row = await taskByRef(this.db, projectId, ref);
    if (!row) throw notFound('task');
    if (row.status !== 'pending' && row.status !== 'in_progress' && row.status !== 'review') throw conflict(`task ${row.key} is ${row.status}: it cannot be cancelled`);
    const host = await this.settledHost(projectId);
    const e: LeadEvent = { type: 'CANCEL_TASK', key: row.key };
    if (host?.can(e)) {
      // The lead's context says cancelled at once (a late report changes nothing); the row once written.
      await host.sendAndPersist(e);
      return this.taskJson(projectId, row.id);
    }
    if (host && host.runStatus() !== 'blocked') throw conflict(`the run is ${host.runStatus()}: it cannot cancel a task now`);
    if (!host) await this.assertNotElsewhere(projectId);
    // No live lead owns the task: cancel it directly (guarded; fenced when a blocked lead of this process owns the run).
    await this.outbox.transact(async (tx, emit) => {
      if (host) await this.leases.fence(tx, host.runId);
      return persistBatch(tx, emit, { projectId, runId: host?.runId ?? '', intents: [{ type: 'cancel', taskId: row.id, key: row.key }] });
    });
    return this.taskJson(projectId, row.id);
  }

  private async taskJson(projectId: string, taskId: string): Promise<TaskJson> {
    const row = await taskByRef(this.db, projectId, taskId);
    if (!row) throw notFound('task');
    const deps = await dependencyKeys(this.db, projectId);
    return taskJson(row, deps.get(row.id) ?? []);
  }

  private async requeueWithoutRun(projectId: string, key: string, guidance: string | undefined): Promise<void> {
    await this.outbox.transact(async (tx, emit) => {
      const rows = await tasksOf(tx, projectId);
      const deps = await dependencyKeys(tx, projectId);
      const views = Object.fromEntries(rows.map((r) => [r.key, taskViewOf(r, deps.get(r.id) ?? [])]));
      const { intents } = requeue(views, key, guidance ?? null);
      await persistBatch(tx, emit, { projectId, runId: '', intents });
    });
  }

  // ── runs ─────────────────────────────────────────────────────────────────────────────

  /** Starts a run: plans first when the project has a goal and no tasks. */
  startRun(projectId: string): Promise<RunJson> {
    this.assertAccepting();
    return this.routed(projectId, 'start', {}, () => this.startHere(projectId));
  }

  private async startHere(projectId: string): Promise<RunJson> {
    const runId = newId('run');
    // Not an orphan of this process while it is being started.
    this.launching.add(runId);
    try {
      return await this.startRunAs(projectId, runId);
    } finally {
      this.launching.delete(runId);
    }
  }

  private async startRunAs(projectId: string, runId: string): Promise<RunJson> {
    const project = await this.projects.row(projectId);
    const previous = await this.settledHost(projectId);
    // A lead that finished (or is blocked) is superseded by the new run; only an active one blocks it.
    if (previous && ACTIVE.has(previous.runStatus())) throw conflict(`a run is already ${previous.runStatus()}`);
    const { row, plan } = await this.outbox.transact(async (tx, emit) => {
      // The project row is locked first, as a delete locks it: a start and a delete never interleave.
      const [locked] = await tx.select({ id: projectsTable.id }).from(projectsTable).where(eq(projectsTable.id, projectId)).for('no key update');
      if (!locked) throw notFound('project');
      const taskRows = await tasksOf(tx, projectId);
      const plan = project.goal !== null && taskRows.length === 0;
      if (!plan && taskRows.length === 0) throw unprocessable('nothing to do: the project has no tasks and no goal');
      if (!plan && !taskRows.some((t) => t.status === 'pending' || t.status === 'in_progress')) {
        throw unprocessable('nothing to do: no pending tasks (retry a failed, blocked or cancelled task first)');
      }
      // No run is active, so nothing can be running: tasks left in progress by a crash go back to the queue.
      const stale = taskRows.filter((t) => t.status === 'in_progress').map<Intent>((t) => ({ type: 'release', taskId: t.id, key: t.key }));
      let row: RunRow;
      try {
        [row] = (await tx
          .insert(runs)
          .values({ id: runId, projectId, status: plan ? 'planning' : 'running', ...this.leases.fresh() })
          .returning()) as [RunRow];
      } catch (e) {
        if (pgCode(e) === '23505') throw conflict('a run is already active for this project');
        throw e;
      }
      emit(event('run.started', { status: row.status as RunStatus }, { projectId, runId }));
      await persistBatch(tx, emit, { projectId, runId, intents: stale });
      return { row, plan };
    });
    if (previous) {
      this.hosts.delete(projectId);
      await previous.stop();
    }
    await this.launch(row, plan ? 'plan' : 'running');
    return runJson(row);
  }

  pauseRun(projectId: string) {
    return this.routed(projectId, 'pause', {}, () => this.control(projectId, { type: 'PAUSE' }, 'pause'));
  }

  resumeRun(projectId: string) {
    return this.routed(projectId, 'resume', {}, () => this.control(projectId, { type: 'RESUME' }, 'resume'));
  }

  cancelRun(projectId: string) {
    return this.routed(projectId, 'cancel', {}, () => this.control(projectId, { type: 'CANCEL' }, 'be cancelled'));
  }

  // ── control requests carried to the owner ───────────────────────────────────────────

  /**
   * Runs a control request here, or — when another live process executes the project's run —
   * carries it to that process through Postgres and answers what it answered. An owner that
   * died is replaced first: its run is adopted here, then the request runs here.
   */
  private async routed<T>(projectId: string, action: ControlAction, args: Record<string, unknown>, here: () => Promise<T>): Promise<T> {
    for (let tries = 0; ; tries++) {
      const run = (await latestRuns(this.db, [projectId])).get(projectId);
      const owner = run && tries < 3 ? await this.remoteOwner(run) : null;
      if (!owner) {
        if (run && ACTIVE.has(run.status as RunStatus) && !this.hosting(run.id) && this.accepting) {
          await this.adopt(run).catch((e: unknown) => this.o.logger.warn({ err: coerceError(e), runId: run.id }, 'cannot adopt the run'));
        }
        return here();
      }
      const answer = await this.relay.send(owner, { projectId, runId: run!.id, action, args });
      if (answer === OWNER_GONE) continue;
      return answerOf<T>(action, answer);
    }
  }

  /** The other live process that executes `run`, if any (a run whose lease expired or whose owner is dead has none). */
  private async remoteOwner(run: RunRow): Promise<string | null> {
    if (!run.owner || run.owner === this.leases.owner) return null;
    if (!ACTIVE.has(run.status as RunStatus) && run.status !== 'blocked') return null;
    return (await this.leases.holder(run.id)) ?? null;
  }

  /** A request another process carried here: run through the same code as one received here. */
  private async execute(request: ControlRequest): Promise<ControlAnswer> {
    const { projectId, args } = request;
    const action = request.action as ControlAction;
    try {
      switch (action) {
        case 'start':
          this.assertAccepting();
          return { status: 202, body: { run: await this.startHere(projectId) } };
        case 'pause':
          return { status: 202, body: { run: await this.control(projectId, { type: 'PAUSE' }, 'pause') } };
        case 'resume':
          return { status: 202, body: { run: await this.control(projectId, { type: 'RESUME' }, 'resume') } };
        case 'cancel':
          return { status: 202, body: { run: await this.control(projectId, { type: 'CANCEL' }, 'be cancelled') } };
        case 'retry': {
          this.assertAccepting();
          const { ref, guidance } = taskArgs.parse(args);
          return { status: 202, body: await this.retryHere(projectId, ref, guidance) };
        }
        case 'cancel_task':
          return { status: 202, body: await this.cancelTaskHere(projectId, taskArgs.parse(args).ref) };
        case 'approve':
        case 'reject': {
          this.assertAccepting();
          const { ref, guidance } = taskArgs.parse(args);
          return { status: 202, body: await this.reviewHere(projectId, ref, action === 'approve' ? 'approved' : 'rejected', guidance) };
        }
        case 'patch':
          return { status: 200, body: await this.updateHere(projectId, patchProjectSchema.parse(args.patch)) };
        default:
          throw invalid(`unknown control action ${JSON.stringify(request.action)}`);
      }
    } catch (e) {
      if (e instanceof TroupeError) return { status: e.status, body: { error: { code: e.code, message: e.message, ...(e.details === undefined ? {} : { details: e.details }) } } };
      throw e;
    }
  }

  private async control(projectId: string, e: LeadEvent, what: string): Promise<RunJson> {
    await this.projects.row(projectId);
    const host = await this.settledHost(projectId);
    if (!host) {
      await this.assertNotElsewhere(projectId);
      throw conflict(`there is no run to ${what.replace('be cancelled', 'cancel')}`);
    }
    if (!host.can(e)) throw conflict(`the run is ${host.runStatus()}: it cannot ${what}`);
    host.send(e);
    const row = await runById(this.db, projectId, host.runId);
    if (!row) throw notFound('run');
    return { ...runJson(row), status: host.runStatus() };
  }

  async listRuns(projectId: string): Promise<RunJson[]> {
    await this.projects.row(projectId);
    return (await runsOf(this.db, projectId)).map(runJson);
  }

  async getRun(projectId: string, runId: string): Promise<RunJson> {
    await this.projects.row(projectId);
    const row = await runById(this.db, projectId, runId);
    if (!row) throw notFound('run');
    return runJson(row);
  }

  /**
   * Starts a lead for `run`: restored from its persisted snapshot when one exists and both
   * machines still have the versions it was written with; otherwise rebuilt from the task rows
   * (in-flight tasks go back to the queue). Either way, recorded model answers are reused.
   */
  private launch(run: RunRow, start: LeadInput['start']): Promise<LeadHost> {
    const under = this.launches.get(run.id);
    if (under) return under;
    const hosted = this.hosts.get(run.projectId);
    if (hosted?.runId === run.id) return Promise.resolve(hosted);
    const work = this.launchClaimed(run, start).finally(() => this.launches.delete(run.id));
    this.launches.set(run.id, work);
    return work;
  }

  private async launchClaimed(run: RunRow, start: LeadInput['start']): Promise<LeadHost> {
    const sent = Date.now();
    if (!(await this.leases.claim(run.id, run.owner))) throw await this.elsewhere(run.id);
    this.confirmed.set(run.id, sent);
    const project = await this.projects.row(run.projectId);
    const snapshot = await this.restorableSnapshot(run.id);
    if (!snapshot) await this.releaseStale(run);
    const [taskRows, deps, seq] = await Promise.all([
      tasksOf(this.db, run.projectId),
      dependencyKeys(this.db, run.projectId),
      this.workerSeq(run.id),
    ]);
    const host = new LeadHost({
      machine: this.machine,
      outbox: this.outbox,
      logger: this.o.logger.child({ projectId: run.projectId, runId: run.id }),
      inspectors: [(ev, scope) => this.inspection.observe(scope.projectId, ev), ...(this.o.inspectors ?? [])],
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
    const pending = new Set<string>();
    let loading = false;
    const load = async () => {
      loading = true;
      try {
        while (pending.size > 0) {
          const keys = new Set(pending);
          pending.clear();
          const [rows, deps] = await Promise.all([tasksOf(this.db, host.projectId), dependencyKeys(this.db, host.projectId)]);
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
  private async elsewhere(runId: string): Promise<TroupeError> {
    const holder = await this.leases.holder(runId);
    return conflict(`the run moved to another troupe process${holder ? ` (${holder})` : ''} while the request was on its way: send it again`, { owner: holder });
  }

  /** When no lead here hosts the project's run: is it because another process does? */
  private async assertNotElsewhere(projectId: string): Promise<void> {
    const latest = (await latestRuns(this.db, [projectId])).get(projectId);
    if (latest && (await this.leases.holder(latest.id))) throw await this.elsewhere(latest.id);
  }

  /** The run's persisted lead snapshot, if it can be restored with today's machines. */
  private async restorableSnapshot(runId: string): Promise<Snapshot<unknown> | undefined> {
    const rows = await actorsOfRun(this.db, runId);
    const lead = rows.find((r) => r.actorId === 'lead');
    if (!lead || lead.machineVersion !== LEAD_MACHINE_VERSION || lead.status !== 'active') return undefined;
    if (rows.some((r) => r.kind === 'worker' && r.machineVersion !== WORKER_MACHINE_VERSION)) return undefined;
    return lead.snapshot as Snapshot<unknown>;
  }

  /** Before a lead takes a run over, nothing of it may look in flight (and `pausing` has ended). */
  private async releaseStale(run: RunRow): Promise<void> {
    await withDbRetry(() =>
      this.outbox.transact(async (tx, emit) => {
        await this.leases.fence(tx, run.id);
        const stale = (await tasksOf(tx, run.projectId)).filter((t) => t.status === 'in_progress');
        const intents: Intent[] = stale.map((t) => ({ type: 'release', taskId: t.id, key: t.key }));
        if (run.status === 'pausing') intents.push({ type: 'run', status: 'paused' });
        await persistBatch(tx, emit, { projectId: run.projectId, runId: run.id, intents });
      }),
    );
  }

  /** Highest worker number per type already used in the run: worker ids are never reused. */
  private async workerSeq(runId: string): Promise<Partial<Record<AgentType, number>>> {
    const rows = await this.db.select({ agentId: agents.agentId }).from(agents).where(eq(agents.runId, runId));
    const seq: Partial<Record<AgentType, number>> = {};
    for (const { agentId } of rows) {
      const w = parseWorkerId(agentId);
      if (w) seq[w.type] = Math.max(seq[w.type] ?? 0, w.n);
    }
    return seq;
  }

  // ── actors and usage ─────────────────────────────────────────────────────────────────

  async listActors(projectId: string) {
    await this.projects.row(projectId);
    const latest = (await latestRuns(this.db, [projectId])).get(projectId);
    if (!latest) return [];
    return (await this.actorRows(latest.id)).map(({ row, taskKey }) => actorJson(row, taskKey));
  }

  async getActor(projectId: string, actorId: string) {
    await this.projects.row(projectId);
    const latest = (await latestRuns(this.db, [projectId])).get(projectId);
    const found = latest ? (await this.actorRows(latest.id, actorId))[0] : undefined;
    if (!found) throw notFound('actor');
    return { ...actorJson(found.row, found.taskKey), snapshot: sanitize(found.row.snapshot) };
  }

  /** The run's actor rows (or one), each with the key of the task its `taskId` names: one query. */
  private actorRows(runId: string, actorId?: string) {
    const where = and(eq(actorSnapshots.runId, runId), actorId === undefined ? undefined : eq(actorSnapshots.actorId, actorId));
    return this.db
      .select({ row: actorSnapshots, taskKey: tasksTable.key })
      .from(actorSnapshots)
      .leftJoin(tasksTable, eq(tasksTable.id, actorSnapshots.taskId))
      .where(where)
      .orderBy(asc(actorSnapshots.actorId));
  }

  async usage(projectId: string) {
    await this.projects.row(projectId);
    const [totals, byTask, byAgent, byModel, taskRows] = await Promise.all([
      usageByProject(this.db, [projectId]),
      usageGrouped(this.db, projectId, 'taskId'),
      usageGrouped(this.db, projectId, 'agentId'),
      usageGrouped(this.db, projectId, 'model'),
      tasksOf(this.db, projectId),
    ]);
    const keyOf = new Map(taskRows.map((t) => [t.id, t.key]));
    return {
      totals: usageJson(totals.get(projectId)),
      byTask: byTask.map((u) => ({ taskId: u.group, key: u.group ? (keyOf.get(u.group) ?? null) : null, ...usageJson(u) })),
      byAgent: byAgent.map((u) => ({ agentId: u.group, ...usageJson(u) })),
      byModel: byModel.map((u) => ({ model: u.group, ...usageJson(u) })),
    };
  }

  // ── machines, events, inspection, health ─────────────────────────────────────────────

  /** The statecharts the runtime runs, with the version stored beside their snapshots. */
  machines(): { name: string; version: number }[] {
    return MACHINES.map(({ name, version }) => ({ name, version }));
  }

  /** A machine's `toJSON()` definition, or its `stateDiagram-v2` text. */
  machineDefinition(name: string, format: 'json' | 'mermaid'): unknown {
    const entry = MACHINES.find((m) => m.name === name);
    if (!entry) throw notFound('machine');
    return format === 'mermaid' ? toMermaid(entry.machine) : entry.machine.toJSON();
  }

  /** One page of a project's event log after `since`. */
  async eventLog(projectId: string, since: number, limit: number, types?: readonly string[]) {
    await this.projects.row(projectId);
    const events = await readEvents(this.db, { afterSeq: since, projectId, limit, types });
    return { events, next: events.at(-1)?.seq ?? since };
  }

  /** Streams the project's inspection events: its live actors first, then everything they do. */
  async watchInspection(projectId: string, listener: InspectionListener): Promise<() => void> {
    await this.projects.row(projectId);
    const host = this.hosts.get(projectId);
    const live = host ? [host.actor, ...Object.values(host.actor.getSnapshot().children)].filter((a) => a !== undefined) : [];
    return this.inspection.watch(projectId, listener, live as AnyActorRef[]);
  }

  /** Is the database answering? */
  async health(): Promise<boolean> {
    try {
      await this.db.execute(sql`select 1`);
      return true;
    } catch {
      return false;
    }
  }
}

/** The lead's settings from a project row. */
export function settingsOf(project: ProjectRow): LeadSettings {
  const c = normalizeConfig(project.config);
  return {
    maxConcurrency: c.maxConcurrency,
    maxAgents: c.maxAgents,
    maxCorrections: c.maxCorrectionAttempts,
    budgetUsd: c.budgetUsd,
    models: c.models,
    workspace: project.workspace,
    isolation: c.isolation,
    testCommand: project.testCommand,
    testTimeoutMs: c.testTimeoutMs,
    sandbox: c.sandbox,
    review: c.review,
    protectedPaths: c.protectedPaths,
  };
}

/** The Postgres error code of a (possibly wrapped) driver error. */
export function pgCode(thrown: unknown): string | undefined {
  for (let e: unknown = thrown, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** What the owner answered to a carried request, as the local method would return or throw it. */
function answerOf<T>(action: ControlAction, answer: ControlAnswer): T {
  if (answer.status >= 400) throw errorOfAnswer(answer);
  const body = answer.body as { run?: unknown };
  return (action === 'start' || action === 'pause' || action === 'resume' || action === 'cancel' ? body.run : body) as T;
}
