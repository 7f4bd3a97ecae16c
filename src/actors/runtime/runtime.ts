/**
 * The runtime: the one place a machine meets persistence, as a facade over its objects — run
 * hosting (`run-hosting.ts`: leads, leases, heartbeat, adoption, launch), the read model
 * (`read-model.ts`), task control (`task-control.ts`) and the control relay between processes
 * (`control-relay.ts`). The run's control operations are here: they validate, persist or send an
 * event to the lead, and return; they never wait for agent work. Shutdown is in two phases.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Store } from '../../db/client.ts';
import { latestRuns } from '../../db/runs.ts';
import { patchProjectSchema, type CreateProject, type PatchProject, type TaskInput } from '../../domain/inputs.ts';
import { coerceError, invalid, TroupeError } from '../../errors.ts';
import type { EventBus } from '../../events/bus.ts';
import { Outbox } from '../../events/outbox.ts';
import type { Logger } from '../../logger.ts';
import type { RunStatus } from '../../machines/types.ts';
import { ControlRelay, OWNER_GONE, errorOfAnswer, type ControlAnswer, type ControlRequest } from './control-relay.ts';
import { InspectionHub, type InspectionListener } from './inspection.ts';
import type { Inspector, LeadHost } from './lead-host.ts';
import { Leases } from './leases.ts';
import { ProjectService } from './projects.ts';
import { ReadModel } from './read-model.ts';
import { ACTIVE, RunHosting } from './run-hosting.ts';
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

/** Control requests carried to the owner of the run, by their name in `control_requests.action`. */
type ControlAction = 'start' | 'pause' | 'resume' | 'cancel' | 'retry' | 'cancel_task' | 'approve' | 'reject' | 'patch';

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
    return this.routed(id, 'patch', { patch }, () => this.runControl.update(id, patch));
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
    return this.routed(projectId, 'retry', { ref, guidance }, () => this.taskControl.retry(projectId, ref, guidance));
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
    return this.routed(projectId, action, { ref, guidance }, () => this.taskControl.review(projectId, ref, decision, guidance));
  }

  /** Aborts the task's in-flight work; the task ends `cancelled` and nothing writes it back. */
  cancelTask(projectId: string, ref: string): Promise<TaskJson> {
    return this.routed(projectId, 'cancel_task', { ref }, () => this.taskControl.cancel(projectId, ref));
  }

  // ── runs ─────────────────────────────────────────────────────────────────────────────

  /** Starts a run: plans first when the project has a goal and no tasks. */
  startRun(projectId: string): Promise<RunJson> {
    this.assertAccepting();
    return this.routed(projectId, 'start', {}, () => this.runControl.start(projectId));
  }

  pauseRun(projectId: string) {
    return this.routed(projectId, 'pause', {}, () => this.runControl.pause(projectId));
  }

  resumeRun(projectId: string) {
    return this.routed(projectId, 'resume', {}, () => this.runControl.resume(projectId));
  }

  cancelRun(projectId: string) {
    return this.routed(projectId, 'cancel', {}, () => this.runControl.cancel(projectId));
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
      const owner = run && tries < 3 ? await this.hosting.remoteOwner(run) : null;
      if (!owner) {
        if (run && ACTIVE.has(run.status as RunStatus) && !this.hosting.hosting(run.id) && this.hosting.isAccepting) {
          await this.hosting.adopt(run).catch((e: unknown) => this.o.logger.warn({ err: coerceError(e), runId: run.id }, 'cannot adopt the run'));
        }
        return here();
      }
      const answer = await this.relay.send(owner, { projectId, runId: run!.id, action, args });
      if (answer === OWNER_GONE) continue;
      return answerOf<T>(action, answer);
    }
  }

  /** A request another process carried here: run through the same code as one received here. */
  private async execute(request: ControlRequest): Promise<ControlAnswer> {
    const { projectId, args } = request;
    const action = request.action as ControlAction;
    const accepted = () => this.assertAccepting();
    try {
      switch (action) {
        case 'start':
          accepted();
          return { status: 202, body: { run: await this.runControl.start(projectId) } };
        case 'pause':
          return { status: 202, body: { run: await this.runControl.pause(projectId) } };
        case 'resume':
          return { status: 202, body: { run: await this.runControl.resume(projectId) } };
        case 'cancel':
          return { status: 202, body: { run: await this.runControl.cancel(projectId) } };
        case 'retry': {
          accepted();
          const { ref, guidance } = taskArgs.parse(args);
          return { status: 202, body: await this.taskControl.retry(projectId, ref, guidance) };
        }
        case 'cancel_task':
          return { status: 202, body: await this.taskControl.cancel(projectId, taskArgs.parse(args).ref) };
        case 'approve':
        case 'reject': {
          accepted();
          const { ref, guidance } = taskArgs.parse(args);
          return { status: 202, body: await this.taskControl.review(projectId, ref, action === 'approve' ? 'approved' : 'rejected', guidance) };
        }
        case 'patch':
          return { status: 200, body: await this.runControl.update(projectId, patchProjectSchema.parse(args.patch)) };
        default:
          throw invalid(`unknown control action ${JSON.stringify(request.action)}`);
      }
    } catch (e) {
      if (e instanceof TroupeError) return { status: e.status, body: { error: { code: e.code, message: e.message, ...(e.details === undefined ? {} : { details: e.details }) } } };
      throw e;
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

/** What the owner answered to a carried request, as the local method would return or throw it. */
function answerOf<T>(action: ControlAction, answer: ControlAnswer): T {
  if (answer.status >= 400) throw errorOfAnswer(answer);
  const body = answer.body as { run?: unknown };
  return (action === 'start' || action === 'pause' || action === 'resume' || action === 'cancel' ? body.run : body) as T;
}
