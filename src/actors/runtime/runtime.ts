/**
 * The runtime: the one place a machine meets persistence, as a facade over its objects —
 * run hosting (`run-hosting.ts`: the leads hosted here, their leases, heartbeat, adoption,
 * launch and restore), the read model (`read-model.ts`), the control operations
 * (`run-control.ts`, `task-control.ts`) and their routing to the process that executes the run
 * (`control-routing.ts`, `control-relay.ts`). Every public control operation is a method here:
 * it validates, persists or sends an event to the lead, and returns; none waits for agent work.
 * Shutdown is in two phases.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Store } from '../../db/client.ts';
import { patchProjectSchema, type CreateProject, type PatchProject, type TaskInput } from '../../domain/inputs.ts';
import { coerceError, invalid, TroupeError } from '../../errors.ts';
import type { EventBus } from '../../events/bus.ts';
import { Outbox } from '../../events/outbox.ts';
import type { Logger } from '../../logger.ts';
import { ControlRelay, type ControlAnswer, type ControlRequest } from './control-relay.ts';
import { answered, ControlRouting, type ControlAction } from './control-routing.ts';
import { InspectionHub, type InspectionListener } from './inspection.ts';
import type { Inspector, LeadHost } from './lead-host.ts';
import { Leases } from './leases.ts';
import { ProjectService } from './projects.ts';
import { ReadModel } from './read-model.ts';
import { RunHosting } from './run-hosting.ts';
import { RunControl } from './run-control.ts';
import { TaskControl } from './task-control.ts';
import type { RunJson, TaskJson } from './views.ts';

export { settingsOf } from './lead-input.ts';

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

const taskArgs = z.object({ ref: z.string(), guidance: z.string().optional() });

export class Runtime {
  readonly outbox: Outbox;
  readonly projects: ProjectService;
  readonly leases: Leases;
  private readonly hosting: RunHosting;
  private readonly read: ReadModel;
  private readonly taskControl: TaskControl;
  private readonly runControl: RunControl;
  private readonly relay: ControlRelay;
  private readonly routing: ControlRouting;
  private stopping: Promise<void> | null = null;

  constructor(private readonly o: RuntimeOptions) {
    this.outbox = new Outbox(o.store, o.bus);
    this.leases = new Leases(o.store, o.leaseMs ?? 30_000);
    this.relay = new ControlRelay({
      store: o.store,
      owner: this.leases.owner,
      logger: o.logger.child({ part: 'control' }),
      execute: (request) => this.execute(request),
      isDead: async (owner) => (await this.leases.dead([owner])).has(owner),
      timeoutMs: o.controlTimeoutMs,
    });
    this.projects = new ProjectService({ outbox: this.outbox, dataDir: o.dataDir, workspaceRoot: o.workspaceRoot, sandboxMode: o.sandboxMode, childEnv: o.childEnv });
    const inspection = new InspectionHub();
    this.hosting = new RunHosting({
      store: o.store,
      bus: o.bus,
      logger: o.logger,
      outbox: this.outbox,
      leases: this.leases,
      projects: this.projects,
      inspection,
      inspectors: o.inspectors,
      resume: o.resume,
      effects: { client: o.client, dataDir: o.dataDir, childEnv: o.childEnv, maxTokens: o.maxTokens, modelTimeoutMs: o.modelTimeoutMs },
      afterBeat: () => this.relay.serve(),
    });
    this.read = new ReadModel({ db: o.store.db, projects: this.projects, dataDir: o.dataDir, inspection, host: (id) => this.hosting.host(id) });
    this.routing = new ControlRouting({ db: o.store.db, hosting: this.hosting, logger: o.logger, send: (owner, request) => this.relay.send(owner, request) });
    const control = { db: o.store.db, outbox: this.outbox, leases: this.leases, projects: this.projects, hosting: this.hosting };
    this.taskControl = new TaskControl(control);
    this.runControl = new RunControl(control);
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
    await this.hosting.start();
  }

  /** Stops accepting work, stops every lead (aborting in-flight effects) and waits for pending writes. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.hosting.stopBeating();
      await this.relay.stop();
      await this.hosting.stopAll();
      await this.outbox.drain();
      // Others may take the runs over at once instead of waiting for the leases to expire.
      await this.leases.releaseAll().catch((e: unknown) => this.o.logger.warn({ err: coerceError(e) }, 'cannot release leases'));
    })();
    return this.stopping;
  }

  private assertAccepting(): void {
    if (!this.hosting.isAccepting) throw new TroupeError('conflict', 'the service is shutting down');
  }

  /** The lead hosting the project's current run, if any (tests and views use it). */
  host(projectId: string): LeadHost | undefined {
    return this.hosting.host(projectId);
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
    return this.routing.routed(id, 'patch', { patch }, () => this.runControl.update(id, patch));
  }

  /** Deletes a project without an active run (checked in the deleting transaction: a start waits for it, or it for the start). */
  deleteProject(id: string): Promise<void> {
    return this.runControl.remove(id);
  }

  async addTasks(projectId: string, inputs: TaskInput[]): Promise<TaskJson[]> {
    this.assertAccepting();
    // The lead hears of them through their `task.created` events (see RunHosting.watchNewTasks).
    return this.projects.addTasks(projectId, inputs, this.hosting.host(projectId)?.runId ?? null);
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
    return this.routing.routed(projectId, 'retry', { ref, guidance }, () => this.taskControl.retry(projectId, ref, guidance));
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
    return this.routing.routed(projectId, action, { ref, guidance }, () => this.taskControl.review(projectId, ref, decision, guidance));
  }

  /** Aborts the task's in-flight work; the task ends `cancelled` and nothing writes it back. */
  cancelTask(projectId: string, ref: string): Promise<TaskJson> {
    return this.routing.routed(projectId, 'cancel_task', { ref }, () => this.taskControl.cancel(projectId, ref));
  }

  // ── runs ─────────────────────────────────────────────────────────────────────────────

  /** Starts a run: plans first when the project has a goal and no tasks. */
  startRun(projectId: string): Promise<RunJson> {
    this.assertAccepting();
    return this.routing.routed(projectId, 'start', {}, () => this.runControl.start(projectId));
  }

  pauseRun(projectId: string) {
    return this.routing.routed(projectId, 'pause', {}, () => this.runControl.pause(projectId));
  }

  resumeRun(projectId: string) {
    return this.routing.routed(projectId, 'resume', {}, () => this.runControl.resume(projectId));
  }

  cancelRun(projectId: string) {
    return this.routing.routed(projectId, 'cancel', {}, () => this.runControl.cancel(projectId));
  }

  // ── control requests carried here from another process ──────────────────────────

  /** A request another process carried here: run through the same code as one received here. */
  private execute(request: ControlRequest): Promise<ControlAnswer> {
    const { projectId, args } = request;
    const accepting = <T>(work: () => Promise<T>) => () => {
      this.assertAccepting();
      return work();
    };
    const task = () => taskArgs.parse(args);
    switch (request.action as ControlAction) {
      case 'start':
        return answered(202, accepting(async () => ({ run: await this.runControl.start(projectId) })));
      case 'pause':
        return answered(202, async () => ({ run: await this.runControl.pause(projectId) }));
      case 'resume':
        return answered(202, async () => ({ run: await this.runControl.resume(projectId) }));
      case 'cancel':
        return answered(202, async () => ({ run: await this.runControl.cancel(projectId) }));
      case 'retry':
        return answered(202, accepting(() => this.taskControl.retry(projectId, task().ref, task().guidance)));
      case 'cancel_task':
        return answered(202, () => this.taskControl.cancel(projectId, task().ref));
      case 'approve':
      case 'reject': {
        const decision = request.action === 'approve' ? 'approved' : 'rejected';
        return answered(202, accepting(() => this.taskControl.review(projectId, task().ref, decision, task().guidance)));
      }
      case 'patch':
        return answered(200, () => this.runControl.update(projectId, patchProjectSchema.parse(args.patch)));
      default:
        return answered(0, () => Promise.reject(invalid(`unknown control action ${JSON.stringify(request.action)}`)));
    }
  }

  // ── the read model ───────────────────────────────────────────────────────────────────

  listRuns = (projectId: string) => this.read.listRuns(projectId);
  getRun = (projectId: string, runId: string) => this.read.getRun(projectId, runId);
  listActors = (projectId: string) => this.read.listActors(projectId);
  getActor = (projectId: string, actorId: string) => this.read.getActor(projectId, actorId);
  usage = (projectId: string) => this.read.usage(projectId);
  taskDiff = (projectId: string, ref: string, attempt?: number) => this.read.taskDiff(projectId, ref, attempt);
  machines = () => this.read.machines();
  machineDefinition = (name: string, format: 'json' | 'mermaid') => this.read.machineDefinition(name, format);
  eventLog = (projectId: string, since: number, limit: number, types?: readonly string[]) => this.read.eventLog(projectId, since, limit, types);
  watchInspection = (projectId: string, listener: InspectionListener) => this.read.watchInspection(projectId, listener);

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

export { pgCode } from './run-control.ts';
