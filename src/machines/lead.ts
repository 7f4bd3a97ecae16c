/**
 * The lead statechart: one per run. It plans (when given a goal), owns the worker pool, and is
 * the only writer of task status.
 *
 * While `active`, two regions run side by side:
 *  - `schedule` (running ⇄ pausing → paused) decides whether new work may start;
 *  - `writer` persists the lead's decisions ("intents") one batch at a time. A decision counts
 *    only once its guarded write has committed: workers receive a job after the task row says
 *    `in_progress`, and a completion unblocks dependents in the same or a later transaction.
 * The lead updates its context at once (so it never decides twice on the same task) and the
 * writer's guarded SQL has the last word.
 */
import { and, assign, enqueueActions, not, setup, stateIn } from 'xstate';
import {
  allCompleted,
  decideReview,
  inFlight,
  isDead,
  planDispatch,
  propagateFailures,
  requeue,
  summarize,
  type Intent,
  type IntentResult,
  type Tasks,
  type WorkerSeq,
  type Workers,
} from './lead-logic.ts';
import {
  faultMessage,
  parseWorkerId,
  type AgentType,
  type Baseline,
  type Isolation,
  type Job,
  type ReviewPolicy,
  type SandboxSettings,
  type TaskView,
  type WorkerAttemptEvent,
  type WorkerReportEvent,
} from './types.ts';
import { placeholder } from './placeholder.ts';
import { workerMachine } from './worker.ts';

/** Persisted snapshots of another version are not restored (README "Restarts lose nothing but time"). 3: its workers nest their working states. */
export const LEAD_MACHINE_VERSION = 3;

export interface LeadSettings {
  maxConcurrency: number;
  maxAgents: number;
  maxCorrections: number;
  budgetUsd: number | null;
  models: Record<AgentType | 'lead', string>;
  workspace: string;
  isolation: Isolation;
  testCommand: string[];
  testTimeoutMs: number;
  sandbox: SandboxSettings;
  review: ReviewPolicy;
  protectedPaths: string[];
}

export interface LeadInput {
  projectId: string;
  runId: string;
  /** How the run begins: plan from the goal, run the tasks, or come back paused or blocked. */
  start: 'plan' | 'running' | 'paused' | 'blocked';
  goal: string | null;
  settings: LeadSettings;
  tasks: TaskView[];
  /** Highest worker number used so far per type (worker ids are never reused in a run). */
  workerSeq?: Partial<WorkerSeq>;
}

export interface PlanInput { projectId: string; runId: string; goal: string; settings: LeadSettings }
export type PlanOutput = { kind: 'planned'; tasks: TaskView[] } | { kind: 'invalid'; reason: string };

export interface PreflightInput { projectId: string; runId: string; settings: LeadSettings }
/** `ready`: nothing stands in the way of the first model call; `refused`: the run fails with `reason`, nothing paid. */
export type PreflightOutput = { kind: 'ready'; baseline: Baseline | null } | { kind: 'refused'; reason: string };

export interface PersistInput { projectId: string; runId: string; intents: Intent[] }
export interface PersistOutput {
  results: IntentResult[];
  /** Tasks of the project the lead did not know (a finishing write found them and did not end the run). */
  added?: TaskView[];
}

export interface LeadContext {
  projectId: string;
  runId: string;
  /** How the run begins (`paused`/`blocked` when a run is rebuilt); `running` once under way. */
  start: LeadInput['start'];
  goal: string | null;
  settings: LeadSettings;
  tasks: Tasks;
  workers: Workers;
  workerSeq: WorkerSeq;
  /** Decisions waiting for the writer. */
  queue: Intent[];
  /** Decisions being written. */
  batch: Intent[];
  budgetBlocked: boolean;
  summary: string | null;
  /** What the test command said on the base tree before any change (absent in snapshots from before baselines). */
  baseline?: Baseline | null;
}

export type LeadEvent =
  | { type: 'PAUSE' }
  | { type: 'RESUME' }
  | { type: 'CANCEL' }
  | { type: 'CANCEL_TASK'; key: string }
  | { type: 'RETRY'; key: string; guidance?: string | null }
  /** A person's decision about a task in `review`. */
  | { type: 'REVIEW'; key: string; decision: 'approved' | 'rejected'; guidance?: string | null }
  | { type: 'TASKS_ADDED'; tasks: TaskView[] }
  | { type: 'SETTINGS_UPDATED'; settings: LeadSettings }
  | WorkerReportEvent
  | WorkerAttemptEvent;

const WORKER_ERROR = 'xstate.error.actor.';

function toTasks(list: TaskView[]): Tasks {
  return Object.fromEntries(list.map((t) => [t.key, t]));
}

/** Adds tasks the lead does not know yet (never overwrites its own view of a known one). */
function withNewTasks(context: LeadContext, list: TaskView[]): Partial<LeadContext> {
  const fresh = list.filter((t) => !context.tasks[t.key]);
  if (fresh.length === 0) return {};
  const spread = propagateFailures({ ...context.tasks, ...toTasks(fresh) });
  return { tasks: spread.tasks, queue: [...context.queue, ...spread.intents] };
}

function jobFor(context: LeadContext, task: TaskView): Job {
  const s = context.settings;
  const decision = task.review?.decision;
  return {
    taskId: task.id,
    key: task.key,
    epoch: task.epoch,
    startAttempt: Math.max(1, task.attempts),
    mode: decision === 'approved' ? 'land' : decision === 'rejected' ? 'revise' : 'work',
    review: task.review ?? null,
    guidance: decision === 'rejected' ? (task.guidance ?? null) : null,
    settings: {
      projectId: context.projectId,
      runId: context.runId,
      workspace: s.workspace,
      isolation: s.isolation,
      testCommand: s.testCommand,
      testTimeoutMs: s.testTimeoutMs,
      maxCorrections: s.maxCorrections,
      model: s.models[task.agentType],
      sandbox: s.sandbox,
      review: s.review,
      protectedPaths: s.protectedPaths,
      baseline: context.baseline ?? null,
    },
  };
}

const limits = (context: LeadContext) => ({
  maxConcurrency: context.settings.maxConcurrency,
  maxAgents: context.settings.maxAgents,
});

/** A failed, blocked or cancelled task can go again (with what blocks it, see `requeue`). */
const retryable = (context: LeadContext, key: string) => {
  const task = context.tasks[key];
  return task !== undefined && isDead(task.status);
};

export const leadMachine = setup({
  types: {
    context: {} as LeadContext,
    events: {} as LeadEvent,
    input: {} as LeadInput,
  },
  actors: {
    preflight: placeholder<PreflightOutput, PreflightInput>('lead', 'preflight'),
    plan: placeholder<PlanOutput, PlanInput>('lead', 'plan'),
    persist: placeholder<PersistOutput, PersistInput>('lead', 'persist'),
    worker: workerMachine,
  },
  guards: {
    startsWithPlan: ({ context }) => context.start === 'plan' && context.goal !== null && Object.keys(context.tasks).length === 0,
    startsBlocked: ({ context }) => context.start === 'blocked',
    startsPaused: ({ context }) => context.start === 'paused',
    nothingInFlight: ({ context }) => inFlight(context.tasks) === 0,
    hasQueue: ({ context }) => context.queue.length > 0,
    canDispatch: ({ context }) =>
      !context.budgetBlocked && planDispatch(context.tasks, context.workers, context.workerSeq, limits(context)).intents.length > 0,
    isSettled: ({ context }) =>
      inFlight(context.tasks) === 0 &&
      (context.budgetBlocked || planDispatch(context.tasks, context.workers, context.workerSeq, limits(context)).intents.length === 0),
    allCompleted: ({ context }) => allCompleted(context.tasks),
    taskCancellable: ({ context, event }) => {
      if (event.type !== 'CANCEL_TASK') return false;
      const status = context.tasks[event.key]?.status;
      return status === 'pending' || status === 'in_progress' || status === 'review';
    },
    taskRetryable: ({ context, event }) => event.type === 'RETRY' && retryable(context, event.key),
    taskInReview: ({ context, event }) => event.type === 'REVIEW' && context.tasks[event.key]?.status === 'review',
    awaitsReview: ({ context }) => Object.values(context.tasks).some((t) => t.status === 'review'),
    foundNewTasks: ({ event }) => ((event as unknown as { output: PersistOutput }).output.added?.length ?? 0) > 0,
    planned: ({ event }) => (event as unknown as { output: PlanOutput }).output.kind === 'planned',
    preflightPassed: ({ event }) => (event as unknown as { output: PreflightOutput }).output.kind === 'ready',
    isWorkerCrash: ({ event }) => event.type.startsWith(WORKER_ERROR) && parseWorkerId(event.type.slice(WORKER_ERROR.length)) !== null,
    budgetRaised: ({ context, event }) =>
      event.type === 'SETTINGS_UPDATED' &&
      context.budgetBlocked &&
      (event.settings.budgetUsd === null || event.settings.budgetUsd > (context.settings.budgetUsd ?? 0)),
  },
  actions: {
    enqueue: assign(({ context }, intents: Intent[]) => ({ queue: [...context.queue, ...intents] })),
    planDispatch: assign(({ context }) => {
      const plan = planDispatch(context.tasks, context.workers, context.workerSeq, limits(context));
      return { tasks: plan.tasks, workers: plan.workers, workerSeq: plan.workerSeq, queue: [...context.queue, ...plan.intents] };
    }),
    takeBatch: assign(({ context }) => ({ batch: context.queue, queue: [] })),

    /** After a batch commits: start the workers whose tasks are now `in_progress`. */
    afterBatch: enqueueActions(({ context, enqueue }, output: PersistOutput) => {
      const tasks = { ...context.tasks };
      const workers = { ...context.workers };
      const releases: Intent[] = [];
      context.batch.forEach((intent, i) => {
        const result = output.results[i] ?? { applied: false };
        if (intent.type === 'retire') {
          enqueue.stopChild(intent.agentId);
          return;
        }
        if (!('key' in intent)) return;
        const task = tasks[intent.key];
        if (!result.applied) {
          // Lost a race with another writer: the database is right.
          if (task && result.status) tasks[intent.key] = { ...task, status: result.status };
          if (intent.type === 'assign' && workers[intent.agentId]?.taskKey === intent.key) {
            workers[intent.agentId] = { ...workers[intent.agentId]!, taskKey: null };
          }
          // Only this lead dispatches its run's tasks: a row `in_progress` under another agent is
          // left over from before a restart, with nothing running it. Hand it back to the queue.
          if (task && intent.type === 'assign' && result.status === 'in_progress') {
            tasks[intent.key] = { ...task, status: 'pending', agentId: null };
            releases.push({ type: 'release', taskId: task.id, key: task.key });
          }
          return;
        }
        if (intent.type !== 'assign') return;
        const slot = workers[intent.agentId];
        if (!slot) return;
        const created = slot.created || intent.newAgent;
        const stillOurs = task?.status === 'in_progress' && task.agentId === intent.agentId;
        if (!slot.spawned) {
          enqueue.spawnChild('worker', { id: intent.agentId, input: { agentId: intent.agentId, agentType: intent.agentType } });
        }
        workers[intent.agentId] = { ...slot, created, spawned: true, working: stillOurs };
        if (stillOurs) enqueue.sendTo(intent.agentId, { type: 'ASSIGN', job: jobFor(context, task) });
      });
      enqueue.assign({ tasks, workers, batch: [], queue: [...context.queue, ...releases] });
    }),

    handleReport: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'WORKER.REPORT') return;
      const task = context.tasks[event.key];
      const slot = context.workers[event.agentId];
      const workers = { ...context.workers };
      if (slot?.taskKey === event.key) workers[event.agentId] = { ...slot, taskKey: null, working: false };
      // A report about a task that was cancelled, re-queued or reassigned meanwhile changes nothing.
      if (!task || task.status !== 'in_progress' || task.agentId !== event.agentId || task.epoch !== event.epoch) {
        enqueue.assign({ workers });
        return;
      }
      let tasks: Tasks = { ...context.tasks };
      const intents: Intent[] = [];
      let budgetBlocked = context.budgetBlocked;
      const o = event.outcome;
      switch (o.kind) {
        case 'completed': {
          tasks[task.key] = { ...task, status: 'completed' };
          const approved = task.review?.decision === 'approved';
          const detail = approved && !o.verified ? `approved in review; not verified: the change touched the test setup (${task.review?.files.join(', ') ?? ''})` : o.detail;
          intents.push({ type: 'complete', taskId: task.id, key: task.key, commit: o.commit, files: o.files, verified: o.verified, detail });
          break;
        }
        case 'review':
          tasks[task.key] = { ...task, status: 'review', review: o.review, agentId: null };
          intents.push({ type: 'review', taskId: task.id, key: task.key, review: o.review });
          break;
        case 'blocked':
          tasks[task.key] = { ...task, status: 'blocked', blockedReason: o.reason };
          intents.push({ type: 'block', taskId: task.id, key: task.key, reason: o.reason, detail: o.detail });
          break;
        case 'budget_exhausted':
          tasks[task.key] = { ...task, status: 'blocked', blockedReason: 'budget_exhausted' };
          intents.push({
            type: 'block',
            taskId: task.id,
            key: task.key,
            reason: 'budget_exhausted',
            detail: `budget exhausted: spent $${o.spentUsd.toFixed(4)} of $${o.budgetUsd.toFixed(4)}`,
          });
          if (!budgetBlocked) intents.push({ type: 'budget', spentUsd: o.spentUsd, budgetUsd: o.budgetUsd });
          budgetBlocked = true;
          break;
        case 'failed':
          tasks[task.key] = { ...task, status: 'failed' };
          intents.push({ type: 'fail', taskId: task.id, key: task.key, detail: o.detail });
          break;
      }
      const spread = propagateFailures(tasks);
      tasks = spread.tasks;
      enqueue.assign({ tasks, workers, budgetBlocked, queue: [...context.queue, ...intents, ...spread.intents] });
    }),

    handleAttempt: assign(({ context, event }) => {
      if (event.type !== 'WORKER.ATTEMPT') return {};
      const task = context.tasks[event.key];
      if (!task || task.status !== 'in_progress' || task.agentId !== event.agentId || task.epoch !== event.epoch) return {};
      return {
        tasks: { ...context.tasks, [task.key]: { ...task, attempts: event.attempt } },
        queue: [...context.queue, { type: 'attempt' as const, taskId: task.id, key: task.key, attempt: event.attempt }],
      };
    }),

    cancelTask: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'CANCEL_TASK') return;
      const task = context.tasks[event.key];
      if (!task) return;
      const workers = { ...context.workers };
      const slot = task.agentId ? workers[task.agentId] : undefined;
      if (task.status === 'in_progress' && slot?.taskKey === task.key) {
        // Leaving its working state aborts the worker's effect: the model request, the test process.
        if (slot.working) enqueue.sendTo(slot.agentId, { type: 'CANCEL' });
        workers[slot.agentId] = { ...slot, taskKey: null, working: false };
      }
      const spread = propagateFailures({ ...context.tasks, [task.key]: { ...task, status: 'cancelled' } });
      enqueue.assign({
        tasks: spread.tasks,
        workers,
        queue: [...context.queue, { type: 'cancel', taskId: task.id, key: task.key }, ...spread.intents],
      });
    }),

    /** Approve or reject: the task goes back to the queue with the decision (see `decideReview`). */
    reviewTask: assign(({ context, event }) => {
      if (event.type !== 'REVIEW') return {};
      const r = decideReview(context.tasks, event.key, event.decision, event.guidance ?? null);
      return { tasks: r.tasks, queue: [...context.queue, ...r.intents] };
    }),

    retryTask: assign(({ context, event }) => {
      if (event.type !== 'RETRY') return {};
      const r = requeue(context.tasks, event.key, event.guidance);
      // A person chose to try again: let the budget check speak for itself on the next call.
      return { tasks: r.tasks, queue: [...context.queue, ...r.intents], budgetBlocked: false };
    }),

    addTasks: assign(({ context, event }) => {
      if (event.type !== 'TASKS_ADDED') return {};
      return withNewTasks(context, event.tasks);
    }),

    /** The finishing write found tasks the lead did not know: take them, the run goes on. */
    addFound: assign(({ context, event }) => withNewTasks(context, (event as unknown as { output: PersistOutput }).output.added ?? [])),

    updateSettings: assign(({ event }) => (event.type === 'SETTINGS_UPDATED' ? { settings: event.settings } : {})),

    /** Pending tasks behind a dead one (e.g. cancelled while no run was active) are blocked. */
    propagate: assign(({ context }) => {
      const spread = propagateFailures(context.tasks);
      return spread.intents.length === 0 ? {} : { tasks: spread.tasks, queue: [...context.queue, ...spread.intents] };
    }),

    /** A worker actor crashed (a bug, not a failed attempt): its task fails with the reason. */
    workerCrashed: enqueueActions(({ context, event, enqueue }) => {
      const agentId = (event as { type: string }).type.slice(WORKER_ERROR.length);
      const slot = context.workers[agentId];
      if (!slot) return;
      const workers = { ...context.workers };
      delete workers[agentId];
      const task = slot.taskKey ? context.tasks[slot.taskKey] : undefined;
      if (!task || task.status !== 'in_progress' || task.agentId !== agentId) {
        enqueue.assign({ workers });
        return;
      }
      const detail = `worker ${agentId} crashed: ${faultMessage((event as { error?: unknown }).error)}`;
      const spread = propagateFailures({ ...context.tasks, [task.key]: { ...task, status: 'failed' } });
      enqueue.assign({
        workers,
        tasks: spread.tasks,
        queue: [...context.queue, { type: 'fail', taskId: task.id, key: task.key, detail }, ...spread.intents],
      });
    }),

    requeueBudgetBlocked: assign(({ context }) => {
      let tasks = context.tasks;
      const intents: Intent[] = [];
      for (const t of Object.values(context.tasks)) {
        if (t.status === 'blocked' && t.blockedReason === 'budget_exhausted') {
          const r = requeue(tasks, t.key, undefined);
          tasks = r.tasks;
          intents.push(...r.intents);
        }
      }
      return { tasks, queue: [...context.queue, ...intents], budgetBlocked: false };
    }),

    /** Run cancelled: stop every worker's work and cancel every task that has not ended. */
    cancelEverything: enqueueActions(({ context, enqueue }) => {
      const tasks = { ...context.tasks };
      const workers = { ...context.workers };
      const intents: Intent[] = [];
      for (const slot of Object.values(workers)) {
        if (slot.working) enqueue.sendTo(slot.agentId, { type: 'CANCEL' });
        workers[slot.agentId] = { ...slot, taskKey: null, working: false };
      }
      for (const t of Object.values(tasks)) {
        if (t.status === 'pending' || t.status === 'in_progress' || t.status === 'review') {
          tasks[t.key] = { ...t, status: 'cancelled' };
          intents.push({ type: 'cancel', taskId: t.id, key: t.key });
        }
      }
      enqueue.assign({
        tasks,
        workers,
        batch: [...context.queue, ...intents, { type: 'run', status: 'cancelled' }],
        queue: [],
      });
    }),

    /** The run broke: stop the workers and hand in-flight tasks back to the queue. */
    releaseEverything: enqueueActions(({ context, enqueue }, params: { summary: string }) => {
      const tasks = { ...context.tasks };
      const workers = { ...context.workers };
      const intents: Intent[] = [];
      for (const slot of Object.values(workers)) {
        if (slot.working) enqueue.sendTo(slot.agentId, { type: 'CANCEL' });
        workers[slot.agentId] = { ...slot, taskKey: null, working: false };
      }
      for (const t of Object.values(tasks)) {
        if (t.status === 'in_progress') {
          tasks[t.key] = { ...t, status: 'pending', agentId: null };
          intents.push({ type: 'release', taskId: t.id, key: t.key });
        }
      }
      enqueue.assign({
        tasks,
        workers,
        summary: params.summary,
        batch: [...intents, { type: 'run', status: 'failed', summary: params.summary }],
        queue: [],
      });
    }),

    prepareFinish: assign(({ context }) => {
      const done = allCompleted(context.tasks);
      const summary = summarize(context.tasks, context.budgetBlocked);
      const status = done ? ('completed' as const) : ('blocked' as const);
      return { summary, batch: [{ type: 'run' as const, status, summary, knownKeys: Object.keys(context.tasks) }] };
    }),
  },
}).createMachine({
  id: 'lead',
  context: ({ input }) => ({
    projectId: input.projectId,
    runId: input.runId,
    start: input.start,
    goal: input.goal,
    settings: input.settings,
    tasks: toTasks(input.tasks),
    workers: {},
    workerSeq: { backend: 0, frontend: 0, test: 0, ...input.workerSeq },
    queue: [],
    batch: [],
    budgetBlocked: false,
    summary: null,
    baseline: null,
  }),
  initial: 'idle',
  states: {
    idle: {
      always: [
        { guard: 'startsBlocked', target: 'blocked' },
        // A run rebuilt paused had its preflight when it started.
        { guard: 'startsPaused', target: 'active' },
        { target: 'preflight' },
      ],
    },
    /** Before the first paid call: the workspace, the test command, and the baseline run. */
    preflight: {
      on: { CANCEL: 'cancelling' },
      invoke: {
        src: 'preflight',
        input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, settings: context.settings }),
        onDone: [
          {
            guard: and(['preflightPassed', 'startsWithPlan']),
            target: 'planning',
            actions: assign(({ event }) => ({ baseline: (event.output as Extract<PreflightOutput, { kind: 'ready' }>).baseline })),
          },
          {
            guard: 'preflightPassed',
            target: 'active',
            actions: assign(({ event }) => ({ baseline: (event.output as Extract<PreflightOutput, { kind: 'ready' }>).baseline })),
          },
          {
            target: 'failing',
            actions: assign(({ event }) => ({ summary: `refused before any model call: ${(event.output as { reason: string }).reason}` })),
          },
        ],
        onError: {
          target: 'failing',
          actions: assign(({ event }) => ({ summary: `preflight failed: ${faultMessage(event.error)}` })),
        },
      },
    },
    planning: {
      on: { CANCEL: 'cancelling' },
      invoke: {
        src: 'plan',
        input: ({ context }) => ({
          projectId: context.projectId,
          runId: context.runId,
          goal: context.goal ?? '',
          settings: context.settings,
        }),
        onDone: [
          {
            guard: 'planned',
            target: 'active',
            actions: assign(({ event }) => ({ tasks: toTasks((event.output as { tasks: TaskView[] }).tasks) })),
          },
          {
            target: 'failing',
            actions: assign(({ event }) => ({ summary: `planning failed: ${(event.output as { reason: string }).reason}` })),
          },
        ],
        onError: {
          target: 'failing',
          actions: assign(({ event }) => ({ summary: `planning failed: ${faultMessage(event.error)}` })),
        },
      },
    },
    active: {
      type: 'parallel',
      entry: 'propagate',
      on: {
        'xstate.error.actor.*': { guard: 'isWorkerCrash', actions: 'workerCrashed' },
        CANCEL: 'cancelling',
        CANCEL_TASK: { guard: 'taskCancellable', actions: 'cancelTask' },
        RETRY: { guard: 'taskRetryable', actions: 'retryTask' },
        REVIEW: { guard: 'taskInReview', actions: 'reviewTask' },
        TASKS_ADDED: { actions: 'addTasks' },
        SETTINGS_UPDATED: [
          { guard: 'budgetRaised', actions: ['updateSettings', 'requeueBudgetBlocked'] },
          { actions: 'updateSettings' },
        ],
        'WORKER.REPORT': { actions: 'handleReport' },
        'WORKER.ATTEMPT': { actions: 'handleAttempt' },
      },
      states: {
        schedule: {
          initial: 'starting',
          states: {
            starting: {
              always: [{ guard: 'startsPaused', target: 'paused' }, { target: 'running' }],
              exit: assign({ start: 'running' as const }),
            },
            running: {
              on: {
                PAUSE: [
                  { guard: 'nothingInFlight', target: 'paused', actions: { type: 'enqueue', params: [{ type: 'run', status: 'paused' }] } },
                  { target: 'pausing', actions: { type: 'enqueue', params: [{ type: 'run', status: 'pausing' }] } },
                ],
              },
            },
            pausing: {
              // No new dispatch; in-flight work finishes, then the run is paused.
              always: { guard: 'nothingInFlight', target: 'paused', actions: { type: 'enqueue', params: [{ type: 'run', status: 'paused' }] } },
              on: { RESUME: { target: 'running', actions: { type: 'enqueue', params: [{ type: 'run', status: 'running' }] } } },
            },
            paused: {
              on: { RESUME: { target: 'running', actions: { type: 'enqueue', params: [{ type: 'run', status: 'running' }] } } },
            },
          },
        },
        writer: {
          initial: 'idle',
          states: {
            idle: {
              always: [
                // Tasks made ready by the decisions in the queue go out in the same transaction
                // (the database still checks their dependencies, written just before them).
                { guard: and(['hasQueue', stateIn('#lead.active.schedule.running'), 'canDispatch']), target: 'writing', actions: 'planDispatch' },
                { guard: 'hasQueue', target: 'writing' },
                { guard: and([stateIn('#lead.active.schedule.running'), 'canDispatch']), target: 'writing', actions: 'planDispatch' },
                { guard: and([stateIn('#lead.active.schedule.running'), 'isSettled', not('hasQueue')]), target: '#lead.finishing' },
              ],
            },
            writing: {
              entry: 'takeBatch',
              invoke: {
                src: 'persist',
                input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, intents: context.batch }),
                onDone: { target: 'idle', actions: { type: 'afterBatch', params: ({ event }) => event.output } },
                onError: { target: '#lead.failing', actions: assign(({ event }) => ({ summary: `internal error: ${faultMessage(event.error)}` })) },
              },
            },
          },
        },
      },
    },
    finishing: {
      entry: 'prepareFinish',
      invoke: {
        src: 'persist',
        input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, intents: context.batch }),
        onDone: [
          { guard: 'foundNewTasks', target: 'active', actions: 'addFound' },
          { guard: 'allCompleted', target: 'completed' },
          { target: 'blocked' },
        ],
        onError: { target: 'failing', actions: assign(({ event }) => ({ summary: `internal error: ${faultMessage(event.error)}` })) },
      },
    },
    blocked: {
      // Nothing more can run until a person retries a task, reviews one or raises the budget.
      initial: 'sorting',
      states: {
        sorting: { always: [{ guard: 'awaitsReview', target: 'awaitingReview' }, { target: 'stalled' }] },
        /** Tasks wait for a person's approve or reject (and maybe other tasks for a retry). */
        awaitingReview: {},
        /** Failed or blocked tasks wait for a retry, or the run for a bigger budget. */
        stalled: {},
      },
      on: {
        RETRY: {
          guard: 'taskRetryable',
          target: 'active',
          actions: ['retryTask', { type: 'enqueue', params: [{ type: 'run', status: 'running' }] }],
        },
        REVIEW: {
          guard: 'taskInReview',
          target: 'active',
          actions: ['reviewTask', { type: 'enqueue', params: [{ type: 'run', status: 'running' }] }],
        },
        SETTINGS_UPDATED: [
          {
            guard: 'budgetRaised',
            target: 'active',
            actions: ['updateSettings', 'requeueBudgetBlocked', { type: 'enqueue', params: [{ type: 'run', status: 'running' }] }],
          },
          { actions: 'updateSettings' },
        ],
        CANCEL: 'cancelling',
      },
    },
    cancelling: {
      entry: 'cancelEverything',
      invoke: {
        src: 'persist',
        input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, intents: context.batch }),
        onDone: 'cancelled',
        onError: { target: 'failing', actions: assign(({ event }) => ({ summary: `internal error while cancelling: ${faultMessage(event.error)}` })) },
      },
    },
    failing: {
      entry: { type: 'releaseEverything', params: ({ context }) => ({ summary: context.summary ?? 'internal error' }) },
      invoke: {
        src: 'persist',
        input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, intents: context.batch }),
        // If even this write fails, the runtime's sweep marks the run failed.
        onDone: 'failed',
        onError: 'failed',
      },
    },
    completed: { type: 'final' },
    cancelled: { type: 'final' },
    failed: { type: 'final' },
  },
});

export type LeadMachine = typeof leadMachine;
