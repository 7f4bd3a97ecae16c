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
 *
 * The machine only names things; what each event does is a pure function, by subject:
 * `lead-dispatch.ts` (which task goes out next), `lead-pool.ts` (which worker takes it; where a
 * worker is spawned, stopped, sent its job), `lead-reports.ts` (what a worker's report does),
 * `lead-control.ts` (a person's commands and the run's last batches), `lead-logic.ts` (the task
 * graph: intents, failures spreading, retries). Its types are in `lead-types.ts`.
 */
import { and, assertEvent, assign, enqueueActions, not, setup, stateIn } from 'xstate';
import { errorOf, labelled, only, output, outputKind } from './effect-output.ts';
import {
  addTasks,
  blockBehindDead,
  cancelRun,
  cancelTask,
  failRun,
  finishRun,
  initialContext,
  isOpen,
  isRetryable,
  requeueBudgetBlocked,
  retryTask,
  reviewTask,
  toTasks,
} from './lead-control.ts';
import { dispatchNow } from './lead-dispatch.ts';
import { allCompleted, inFlight } from './lead-logic.ts';
import { startWorkers } from './lead-pool.ts';
import { onAttempt, onReport, onWorkerCrash } from './lead-reports.ts';
import type {
  Decision,
  LeadContext,
  LeadEvent,
  LeadInput,
  PersistInput,
  PersistOutput,
  PlanInput,
  PlanOutput,
  PreflightInput,
  PreflightOutput,
} from './lead-types.ts';
import { placeholder } from './placeholder.ts';
import { faultMessage, parseWorkerId } from './types.ts';
import { workerMachine } from './worker.ts';

export type * from './lead-types.ts';

/** Persisted snapshots of another version are not restored (README "Restarts lose nothing but time"). 3: its workers nest their working states. */
export const LEAD_MACHINE_VERSION = 3;

const WORKER_ERROR = 'xstate.error.actor.';
const RUNNING = stateIn('#lead.active.schedule.running');

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
    canDispatch: ({ context }) => dispatchNow(context).intents.length > 0,
    isSettled: ({ context }) => inFlight(context.tasks) === 0 && dispatchNow(context).intents.length === 0,
    allCompleted: ({ context }) => allCompleted(context.tasks),
    taskCancellable: ({ context }, params: { key: string }) => isOpen(context.tasks[params.key]),
    taskRetryable: ({ context }, params: { key: string }) => isRetryable(context.tasks[params.key]),
    taskInReview: ({ context }, params: { key: string }) => context.tasks[params.key]?.status === 'review',
    awaitsReview: ({ context }) => Object.values(context.tasks).some((t) => t.status === 'review'),
    foundNewTasks: (_, out: PersistOutput) => (out.added?.length ?? 0) > 0,
    planned: (_, out: PlanOutput) => out.kind === 'planned',
    preflightPassed: ({ event }) => outputKind(event) === ('ready' satisfies PreflightOutput['kind']),
    isWorkerCrash: ({ event }) => event.type.startsWith(WORKER_ERROR) && parseWorkerId(event.type.slice(WORKER_ERROR.length)) !== null,
    budgetRaised: ({ context }, params: { budgetUsd: number | null }) =>
      context.budgetBlocked && (params.budgetUsd === null || params.budgetUsd > (context.settings.budgetUsd ?? 0)),
  },
  actions: {
    enqueue: assign(({ context }, intents: LeadContext['queue']) => ({ queue: [...context.queue, ...intents] })),
    /** A pure function's decision: the commands to the workers (spawn, stop, job, cancel), then the context. */
    enact: enqueueActions(({ enqueue }, d: Decision) => {
      for (const c of d.commands) {
        if (c.type === 'spawn') enqueue.spawnChild('worker', { id: c.agentId, input: { agentId: c.agentId, agentType: c.agentType } });
        else if (c.type === 'stop') enqueue.stopChild(c.agentId);
        else enqueue.sendTo(c.agentId, c.type === 'assign' ? { type: 'ASSIGN', job: c.job } : { type: 'CANCEL' });
      }
      enqueue.assign(d.context);
    }),
    planDispatch: assign(({ context }) => {
      const plan = dispatchNow(context);
      return { tasks: plan.tasks, workers: plan.workers, workerSeq: plan.workerSeq, queue: [...context.queue, ...plan.intents] };
    }),
    takeBatch: assign(({ context }) => ({ batch: context.queue, queue: [] })),
    handleReport: assign(({ context, event }) => {
      assertEvent(event, 'WORKER.REPORT');
      return onReport(context, event);
    }),
    handleAttempt: assign(({ context, event }) => {
      assertEvent(event, 'WORKER.ATTEMPT');
      return onAttempt(context, event);
    }),
    reviewTask: assign(({ context, event }) => {
      assertEvent(event, 'REVIEW');
      return reviewTask(context, event.key, event.decision, event.guidance ?? null);
    }),
    retryTask: assign(({ context, event }) => {
      assertEvent(event, 'RETRY');
      return retryTask(context, event.key, event.guidance);
    }),
    addTasks: assign(({ context, event }) => {
      assertEvent(event, 'TASKS_ADDED');
      return addTasks(context, event.tasks);
    }),
    /** The finishing write found tasks the lead did not know: take them, the run goes on. */
    addFound: assign(({ context }, out: PersistOutput) => addTasks(context, out.added ?? [])),
    updateSettings: assign(({ event }) => {
      assertEvent(event, 'SETTINGS_UPDATED');
      return { settings: event.settings };
    }),
    propagate: assign(({ context }) => blockBehindDead(context)),
    workerCrashed: assign(({ context, event }) => onWorkerCrash(context, event.type.slice(WORKER_ERROR.length), errorOf(event))),
    requeueBudgetBlocked: assign(({ context }) => requeueBudgetBlocked(context)),
    prepareFinish: assign(({ context }) => finishRun(context)),
  },
}).createMachine({
  id: 'lead',
  context: ({ input }) => initialContext(input),
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
            guard: labelled(and(['preflightPassed', 'startsWithPlan']), 'preflightPassed and startsWithPlan'),
            target: 'planning',
            actions: assign(({ event }) => ({ baseline: only(event.output, 'ready').baseline })),
          },
          {
            guard: 'preflightPassed',
            target: 'active',
            actions: assign(({ event }) => ({ baseline: only(event.output, 'ready').baseline })),
          },
          {
            target: 'failing',
            actions: assign(({ event }) => ({ summary: `refused before any model call: ${only(event.output, 'refused').reason}` })),
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
        input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, goal: context.goal ?? '', settings: context.settings }),
        onDone: [
          {
            guard: { type: 'planned', params: output },
            target: 'active',
            actions: assign(({ event }) => ({ tasks: toTasks(only(event.output, 'planned').tasks) })),
          },
          {
            target: 'failing',
            actions: assign(({ event }) => ({ summary: `planning failed: ${only(event.output, 'invalid').reason}` })),
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
        CANCEL_TASK: {
          guard: { type: 'taskCancellable', params: ({ event }) => ({ key: event.key }) },
          actions: { type: 'enact', params: ({ context, event }) => cancelTask(context, event.key) },
        },
        RETRY: { guard: { type: 'taskRetryable', params: ({ event }) => ({ key: event.key }) }, actions: 'retryTask' },
        REVIEW: { guard: { type: 'taskInReview', params: ({ event }) => ({ key: event.key }) }, actions: 'reviewTask' },
        TASKS_ADDED: { actions: 'addTasks' },
        SETTINGS_UPDATED: [
          {
            guard: { type: 'budgetRaised', params: ({ event }) => ({ budgetUsd: event.settings.budgetUsd }) },
            actions: ['updateSettings', 'requeueBudgetBlocked'],
          },
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
                { guard: labelled(and(['hasQueue', RUNNING, 'canDispatch']), 'hasQueue and running and canDispatch'), target: 'writing', actions: 'planDispatch' },
                { guard: 'hasQueue', target: 'writing' },
                { guard: labelled(and([RUNNING, 'canDispatch']), 'running and canDispatch'), target: 'writing', actions: 'planDispatch' },
                { guard: labelled(and([RUNNING, 'isSettled', not('hasQueue')]), 'running and isSettled and not hasQueue'), target: '#lead.finishing' },
              ],
            },
            writing: {
              entry: 'takeBatch',
              invoke: {
                src: 'persist',
                input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, intents: context.batch }),
                // After a batch commits: start the workers whose tasks are now `in_progress`.
                onDone: { target: 'idle', actions: { type: 'enact', params: ({ context, event }) => startWorkers(context, event.output.results) } },
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
          { guard: { type: 'foundNewTasks', params: output }, target: 'active', actions: { type: 'addFound', params: output } },
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
          guard: { type: 'taskRetryable', params: ({ event }) => ({ key: event.key }) },
          target: 'active',
          actions: ['retryTask', { type: 'enqueue', params: [{ type: 'run', status: 'running' }] }],
        },
        REVIEW: {
          guard: { type: 'taskInReview', params: ({ event }) => ({ key: event.key }) },
          target: 'active',
          actions: ['reviewTask', { type: 'enqueue', params: [{ type: 'run', status: 'running' }] }],
        },
        SETTINGS_UPDATED: [
          {
            guard: { type: 'budgetRaised', params: ({ event }) => ({ budgetUsd: event.settings.budgetUsd }) },
            target: 'active',
            actions: ['updateSettings', 'requeueBudgetBlocked', { type: 'enqueue', params: [{ type: 'run', status: 'running' }] }],
          },
          { actions: 'updateSettings' },
        ],
        CANCEL: 'cancelling',
      },
    },
    cancelling: {
      // Run cancelled: every worker's work stops, every task that has not ended is cancelled.
      entry: { type: 'enact', params: ({ context }) => cancelRun(context) },
      invoke: {
        src: 'persist',
        input: ({ context }) => ({ projectId: context.projectId, runId: context.runId, intents: context.batch }),
        onDone: 'cancelled',
        onError: { target: 'failing', actions: assign(({ event }) => ({ summary: `internal error while cancelling: ${faultMessage(event.error)}` })) },
      },
    },
    failing: {
      // The run broke: the workers stop and in-flight tasks go back to the queue.
      entry: { type: 'enact', params: ({ context }) => failRun(context, context.summary ?? 'internal error') },
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
